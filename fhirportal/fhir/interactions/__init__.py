"""The FHIR RESTful interactions, one module each, named as the spec names them."""
