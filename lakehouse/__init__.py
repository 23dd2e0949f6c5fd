"""lakehouse: declarative multimodal tables on versioned Lance datasets.

>>> import lakehouse as lh
>>> db = lh.connect("doctest-lakehouse")
>>> t = db.create_table("demo", {"n": lh.Int}, if_exists="replace")
>>> _ = t.insert([{"n": 1}, {"n": 2}], progress=False)
>>> _ = t.add_computed_column(n2=t.n * 2 + 1, progress=False)
>>> t.order_by(t.n).collect()["n2"].to_list()
[3, 5]
"""

from importlib.metadata import PackageNotFoundError, version

from lakehouse import functions, iterators
from lakehouse.catalog import Catalog, connect
from lakehouse.diff import Diff
from lakehouse.display import show, to_pil
from lakehouse.engine import RayEngine
from lakehouse.errors import (
    BranchDivergedError,
    BranchExistsError,
    BranchNotFoundError,
    ColumnExistsError,
    ColumnNotFoundError,
    ComputedColumnError,
    ComputeError,
    ConcurrentWriteError,
    DependencyError,
    DirectoryNotFoundError,
    EngineNotInstalledError,
    EngineTaskError,
    EngineUnavailableError,
    Error,
    ExpressionSyntaxError,
    FormatVersionError,
    IndexExistsError,
    IndexNotFoundError,
    InvalidNameError,
    InvalidOptionError,
    MediaError,
    ModelError,
    ModelsNotInstalledError,
    OutputExistsError,
    ReadOnlyError,
    RemoteCallError,
    RemoteModelError,
    SecretLiteralError,
    SecretNotFoundError,
    SnapshotExistsError,
    SourceRefusedError,
    SQLRefusedError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    TypeMismatchError,
    UDFNotFoundError,
    UnsafeDefinitionError,
    UnsupportedError,
    VersionNotFoundError,
)
from lakehouse.exec.evaluate import UDFChangedWarning
from lakehouse.exec.writes import WriteResult
from lakehouse.export.parquet import ExportResult
from lakehouse.exprs.nodes import Expr, if_else, lit
from lakehouse.exprs.parse import parse_condition, parse_expression, parse_selection
from lakehouse.ingest import ImportResult
from lakehouse.iterators import IteratorCall, parse_iterator
from lakehouse.maintenance.compaction import MaintenanceWarning, OptimizeReport
from lakehouse.maintenance.policy import MaintenancePolicy
from lakehouse.maintenance.retention import GcReport
from lakehouse.media.policy import FetchPolicy
from lakehouse.progress import progress_bars
from lakehouse.queries import Query
from lakehouse.query_function import query
from lakehouse.secrets import Secret, secret
from lakehouse.table import Table, TableSummary
from lakehouse.types import (
    Array,
    Audio,
    Bool,
    ColumnType,
    Date,
    Document,
    Float,
    Image,
    Int,
    Json,
    Required,
    String,
    Timestamp,
    Video,
    parse_type,
)
from lakehouse.udf import UDF, udf
from lakehouse.views import ViewStatus

try:
    __version__ = version("lakehouse")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    # catalog
    "connect", "Catalog", "Table", "TableSummary", "ViewStatus", "Query", "WriteResult",
    "ImportResult", "ExportResult", "FetchPolicy", "MaintenancePolicy", "OptimizeReport",
    "GcReport", "RayEngine",
    "Diff", "progress_bars",
    # types
    "ColumnType", "String", "Int", "Float", "Bool", "Timestamp", "Date", "Json", "Array",
    "Required", "Image", "Video", "Audio", "Document", "parse_type",
    # expressions and functions
    "Expr", "if_else", "lit", "udf", "UDF", "query", "functions",
    "parse_expression", "parse_condition", "parse_selection", "parse_iterator",
    # secrets
    "secret", "Secret",
    # views
    "iterators", "IteratorCall",
    # results
    "to_pil", "show",
    # errors and warnings
    "Error", "InvalidNameError", "TableNotFoundError", "TableExistsError",
    "DirectoryNotFoundError", "ColumnNotFoundError", "ColumnExistsError", "TypeMismatchError",
    "DependencyError", "ComputeError", "UDFNotFoundError", "UnsafeDefinitionError",
    "FormatVersionError", "ReadOnlyError", "StorageError", "ConcurrentWriteError",
    "VersionNotFoundError", "IndexExistsError", "IndexNotFoundError", "MediaError",
    "SourceRefusedError",
    "ModelError", "ModelsNotInstalledError", "SnapshotExistsError", "ExpressionSyntaxError",
    "BranchNotFoundError", "BranchExistsError", "BranchDivergedError",
    "InvalidOptionError",
    "ComputedColumnError", "UnsupportedError",
    "RemoteCallError", "RemoteModelError", "SecretLiteralError", "SecretNotFoundError",
    "OutputExistsError", "SQLRefusedError",
    "EngineNotInstalledError", "EngineUnavailableError", "EngineTaskError",
    "UDFChangedWarning", "MaintenanceWarning",
]
