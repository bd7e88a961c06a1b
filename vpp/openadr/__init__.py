"""OpenADR 2.0b: the site as a VEN (:mod:`vpp.openadr.ven`)."""
