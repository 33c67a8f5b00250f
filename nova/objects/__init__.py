"""Versioned objects.

Importing this package registers nothing; call ``register_all()`` once, after
which each object is reachable as ``nova.objects.<Name>``.
"""


def register_all() -> None:
    # Importing a module registers its objects with NovaObjectRegistry,
    # whose hook publishes them as attributes of this package.
    __import__('nova.objects.flavor')
    __import__('nova.objects.image_meta')
    __import__('nova.objects.instance')
    __import__('nova.objects.request_spec')
