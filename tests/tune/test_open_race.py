"""Workers started together on an empty database race to create Optuna's tables: the
loser retries instead of dying (seen in CI: PostgreSQL's DuplicateTable)."""

import pytest
import sqlalchemy

from mnistlab import tune
from mnistlab.config import TuneConfig
from mnistlab.tune import study as tune_study

DUPLICATE_TABLE = sqlalchemy.exc.ProgrammingError(
    "CREATE TABLE alembic_version", {}, Exception('relation "alembic_version" already exists')
)


@pytest.mark.parametrize(
    "error",
    [
        DUPLICATE_TABLE,
        sqlalchemy.exc.OperationalError("CREATE TABLE studies", {}, Exception("already exists")),
        sqlalchemy.exc.IntegrityError("INSERT INTO version_info", {}, Exception("duplicate key")),
    ],
    ids=["postgres-duplicate-table", "sqlite-table-exists", "postgres-duplicate-key"],
)
def test_the_loser_of_the_schema_race_retries(monkeypatch, tmp_path, error):
    calls = []

    def open_once_failing(config, url):
        calls.append(url)
        if len(calls) == 1:
            raise error
        return "study"

    monkeypatch.setattr(tune_study, "_open_study", open_once_failing)
    monkeypatch.setattr(tune_study.time, "sleep", lambda seconds: None)
    assert tune.open_study(TuneConfig(study="s"), tmp_path) == "study"
    assert len(calls) == 2


def test_other_programming_errors_are_not_retried(monkeypatch, tmp_path):
    def refuse(config, url):
        raise sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception("permission denied"))

    monkeypatch.setattr(tune_study, "_open_study", refuse)
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"):
        tune.open_study(TuneConfig(study="s"), tmp_path)
