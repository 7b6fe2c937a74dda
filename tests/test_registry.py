import pytest
from torch import nn

from effbench import registry
from effbench.cli import main
from effbench.errors import UsageError


def test_list_models_wildcard():
    assert "mobilenet_v2_100_imagenet" in registry.list_models("mobilenet*")
    assert registry.list_models("no_such_*") == []


def test_register_twice_raises():
    @registry.register_model
    def _test_dup_model(**kw):
        return nn.Identity()

    try:
        with pytest.raises(ValueError, match="registered twice"):
            registry.register_model(_test_dup_model)
    finally:
        registry._models.pop("_test_dup_model")


def test_create_model_drops_none_kwargs():
    @registry.register_model
    def _test_kw_model(width: int = 3, **kw):
        return nn.Linear(width, 1)

    try:
        assert registry.create_model("_test_kw_model", width=None).in_features == 3
        assert registry.create_model("_test_kw_model", width=5).in_features == 5
    finally:
        registry._models.pop("_test_kw_model")


def test_unknown_model_names_closest():
    with pytest.raises(UsageError, match="closest: mobilenet_v2_100_imagenet"):
        registry.create_model("mobilenet_v2_100_imagnet")


def test_unknown_suite():
    with pytest.raises(UsageError, match="unknown suite 'nope'"):
        registry.get_suite("nope")


def test_cli_unknown_model_exit_2(capsys):
    for command in (["profile", "--no-latency", "--model"], ["train", "--model"]):
        assert main([*command, "mobilenet_v2_100_imagnet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: unknown model 'mobilenet_v2_100_imagnet'; closest: mobilenet_v2_100_imagenet")
        assert err.count("\n") == 1
    # `list` with a pattern matching nothing says so with the closest names; an unknown command is argparse's usage
    # error.
    assert main(["list", "zzz*"]) == 2
    assert capsys.readouterr().err.startswith("error: no model matches 'zzz*'; ")
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
