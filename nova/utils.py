"""Utilities shared by the layers of this tree."""

import typing as ty

#: Prefix of the image properties Nova stashes in ``system_metadata``.
SM_IMAGE_PROP_PREFIX = 'image_'
#: Image attributes (not properties) that are stashed too.
SM_INHERITABLE_KEYS = (
    'min_ram', 'min_disk', 'disk_format', 'container_format',
)
#: Glance keeps values of at most this many characters in its properties.
MAX_SYSMETA_VALUE_LENGTH = 255


def get_system_metadata_from_image(
    image_meta: ty.Mapping[str, ty.Any],
) -> dict[str, str]:
    """Build the ``image_*`` system metadata keys of a Glance image dict.

    The stashed values are what the instance keeps of its image: after the
    first boot they, not Glance, are the source of truth for the image
    properties (the image may since have changed or been deleted).
    """
    system_meta = {}
    for key, value in (image_meta.get('properties') or {}).items():
        if value is None:
            continue
        system_meta[SM_IMAGE_PROP_PREFIX + key] = (
            str(value)[:MAX_SYSMETA_VALUE_LENGTH])
    for key in SM_INHERITABLE_KEYS:
        value = image_meta.get(key)
        if value is not None:
            system_meta[SM_IMAGE_PROP_PREFIX + key] = str(value)
    return system_meta


def get_image_from_system_metadata(
    system_meta: ty.Mapping[str, str],
) -> dict[str, ty.Any]:
    """Rebuild a Glance-shaped image dict from ``image_*`` system metadata.

    The inverse of :func:`get_system_metadata_from_image`.
    """
    image_meta: dict[str, ty.Any] = {}
    properties = {}
    for key, value in system_meta.items():
        if not key.startswith(SM_IMAGE_PROP_PREFIX):
            continue
        name = key[len(SM_IMAGE_PROP_PREFIX):]
        if name in SM_INHERITABLE_KEYS:
            image_meta[name] = value
        else:
            properties[name] = value
    image_meta['properties'] = properties
    return image_meta


def replace_image_system_metadata(
    system_meta: ty.Mapping[str, str],
    image_meta: ty.Mapping[str, ty.Any],
) -> dict[str, str]:
    """Return ``system_meta`` with its ``image_*`` keys taken from an image.

    Used on rebuild: a property the old image had and the new one lacks must
    go, or the instance would keep, say, stateless firmware it no longer
    asks for.
    """
    kept = {k: v for k, v in system_meta.items()
            if not k.startswith(SM_IMAGE_PROP_PREFIX)}
    kept.update(get_system_metadata_from_image(image_meta))
    return kept
