"""The emulator's MotherDuck SQL: the statements of the facts file on the REST side's organisation.

``lexer`` (quoting and tokens), ``errors`` (SQLSTATEs and message texts), ``catalog`` (roles,
databases, shares, grants, attachments and who may change them), ``query`` (the SELECTs) and
``session`` (one token's session: parsing each statement and running it on the catalog).
"""
