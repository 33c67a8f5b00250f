"""oslo.i18n integration for the ``nova`` domain."""

import oslo_i18n

_translators = oslo_i18n.TranslatorFactory(domain='nova')

# The primary translation function using the well-known name "_"
_ = _translators.primary
