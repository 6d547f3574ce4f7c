"""The CLI's errors: a bad conf is one line naming the key (exit 2, before Spark); a Spark
failure is one line (the Java exception class and message) plus the path of a log file with
the full trace (exit 1)."""
from __future__ import annotations

import re

import pytest

from gaialake.cli import error_line, failure_log_dir, guarded, main


def _conf_sets(conf) -> list[str]:
    return ["--set", f"paths.warehouse={conf.path('paths.warehouse')}",
            "--set", f"paths.raw={conf.path('paths.raw')}",
            "--set", f"paths.mlflow={conf.path('paths.mlflow')}",
            "--set", f"paths.report={conf.path('paths.report')}"]


def test_a_conf_typo_is_one_line_and_exit_2(capsys):
    assert main(["patches", "--set", "patches.radius_degs=10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gaialake patches: --set patches.radius_degs=10: conf key patches.radius_degs "
                   "is unknown; did you mean patches.radius_deg?"]
    assert main(["pipeline", "--set", "sky.n_stars=abc"]) == 2
    assert capsys.readouterr().err.strip() == (
        "gaialake pipeline: --set sky.n_stars=abc: conf sky.n_stars: 'abc' is not a number")


def test_invalid_yaml_in_a_conf_file_is_one_line_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "my.yaml"
    bad.write_text("sky:\n  n_stars: [1000\n")
    assert main(["generate", "--conf", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"gaialake generate: {bad} line ")
    assert "invalid YAML" in err[0]


def test_sql_on_a_missing_table_is_one_line_and_a_log_with_the_trace(spark, conf, capsys):
    rc = main(["sql", *_conf_sets(conf), "--set", "catalog.database=default",
               "SELECT * FROM no_such_table_for_the_cli"])
    assert rc == 1
    lines = capsys.readouterr().err.splitlines()
    err = [line for line in lines
           if line.startswith("gaialake sql failed") or "full trace:" in line]
    assert len(err) == 2, lines
    assert not any(line.lstrip().startswith(("{", "Traceback", "\tat ")) for line in lines), lines
    assert re.match(r"gaialake sql failed: org\.apache\.spark\.sql\.[\w.]*AnalysisException: ",
                    err[0]), err[0]
    assert "TABLE_OR_VIEW_NOT_FOUND" in err[0] and "\tat " not in err[0]
    path = err[1].split("full trace: ", 1)[1]
    logs = failure_log_dir(conf)
    assert str(logs) == f"{conf.path('paths.warehouse')}/_logs" and path.startswith(str(logs))
    text = open(path).read()
    assert "Traceback (most recent call last)" in text and "no_such_table_for_the_cli" in text
    assert "JVM stacktrace" in text and "org.apache.spark.sql" in text


def test_a_java_exception_through_py4j_and_one_raised_from_it(spark, conf, capsys):
    def parse():
        spark.sparkContext._jvm.java.lang.Integer.parseInt("not-a-number")

    assert guarded("probe", conf, parse) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ('gaialake probe failed: java.lang.NumberFormatException: For input string: '
                      '"not-a-number"')
    assert "java.lang.NumberFormatException" in open(err[1].split("full trace: ")[1]).read()

    def wrapped():
        try:
            spark.sql("SELECT * FROM no_such_table_either").collect()
        except Exception as exc:
            raise RuntimeError("reading the input failed") from exc

    assert guarded("probe", conf, wrapped) == 1
    line = capsys.readouterr().err.splitlines()[0]       # pyspark's own error log is quiet
    assert re.match(r"gaialake probe failed: RuntimeError: reading the input failed \(from "
                    r"org\.apache\.spark\.sql\.[\w.]*AnalysisException: .*no_such_table_either",
                    line), line


def test_other_exceptions_keep_their_python_trace(conf):
    with pytest.raises(ZeroDivisionError):
        guarded("probe", conf, lambda: 1 // 0)


def test_the_log_dir_is_paths_logs_or_a_temp_folder_for_a_remote_warehouse(conf, tmp_path):
    conf.set("paths.logs", str(tmp_path / "mylogs"))
    assert failure_log_dir(conf) == tmp_path / "mylogs"
    conf.set("paths.logs", None)
    conf.set("paths.warehouse", "s3a://bucket/gaialake")
    assert failure_log_dir(conf).name == "gaialake-logs"


def test_error_line_without_a_jvm_uses_the_python_text():
    from pyspark.errors import PySparkValueError

    exc = PySparkValueError(errorClass="CANNOT_BE_NONE", messageParameters={"arg_name": "x"})
    assert error_line(exc).startswith("PySparkValueError: [CANNOT_BE_NONE]")
