"""The workshop database: rooms, participants' nicknames, attempts and quiz sittings (no streamlit import).

SQLAlchemy Core tables with a schema version (:mod:`core.store.schema`), SQLite in WAL mode under the studio's
cache folder by default, any SQLAlchemy URL through ``$GRADCAM_STUDIO_DB`` or :class:`Store`'s argument
(:mod:`core.store.engine`), the instructor's views (:mod:`core.store.views`), room codes, hashed instructor keys
and cleaned nicknames (:mod:`core.store.secure`), the export's CSV with spreadsheet formulas neutralised
(:mod:`core.store.export`).
Reference: docs/workshop-db.md.
"""
from .engine import DB_ENV, StoreError, StoreUnavailable, default_url
from .export import EXPORT_FIELDS, csv_text
from .schema import SCHEMA_VERSION, SchemaError
from .secure import NICKNAME_MAX, clean_nickname, normalise_code
from .store import Room, RoomClosed, Store
from .views import AccessDenied

__all__ = ["Store", "Room", "AccessDenied", "RoomClosed", "StoreError", "StoreUnavailable", "SchemaError",
           "clean_nickname", "normalise_code", "default_url", "csv_text", "EXPORT_FIELDS", "DB_ENV", "SCHEMA_VERSION",
           "NICKNAME_MAX"]
