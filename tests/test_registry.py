import pytest

from synthxray.registry import Registry


def test_register_get_names():
    reg = Registry("thing")

    @reg.register("b")
    class B: ...

    reg.register("a", int, config_cls=dict)
    assert reg.names() == ["a", "b"]
    assert reg.get("b") is B and reg.config_class("a") is dict
    assert "a" in reg and "c" not in reg


def test_unknown_name_lists_known():
    reg = Registry("backbone")
    reg.register("cnn", object)
    with pytest.raises(KeyError, match="unknown backbone 'resnet'.*cnn"):
        reg.get("resnet")


def test_double_registration_is_an_error():
    reg = Registry("x")
    reg.register("a", int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", float)
