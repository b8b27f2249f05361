"""Property tests: the built-in validator agrees with jsonschema on generated build files,
and command-line options survive rendering (OSv's own split gives them back)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osvkit import config

from conftest import require_module  # noqa: E402

jsonschema = require_module("jsonschema")
VALIDATOR = jsonschema.Draft202012Validator(config.schema())

scalars = st.one_of(st.booleans(), st.integers(-3, 300), st.floats(-1, 100, allow_nan=False),
                    st.sampled_from(["", "256M", "1G", "raw", "qcow2", "tcg", "kvm", "probe",
                                     "probe:6M", "a.img", "--verbose", "/hello", "x y"]))
option_values = {
    "memory": st.one_of(st.sampled_from(["256M", "1G", "0", "12Q", "64K"]), st.integers(-1, 4096)),
    "cpus": st.one_of(st.integers(-1, 300), st.sampled_from(["2", 1.5])),
    "timeout": st.one_of(st.floats(-5, 100, allow_nan=False), st.integers(-1, 100), st.just("9")),
    "image-format": st.sampled_from(["raw", "qcow2", "vmdk", 1]),
    "accel": st.sampled_from(["tcg", "kvm", "hvf"]),
    "cmdline": st.one_of(st.text(max_size=8),
                         st.fixed_dictionaries({}, optional={
                             "options": st.lists(st.sampled_from(["--verbose", "-x", "bad", ""]),
                                                 max_size=3),
                             "app": st.lists(st.text(max_size=5), max_size=3)})),
}
outputs = st.dictionaries(st.sampled_from(list(config.OUTPUT_KINDS) + ["vmx"]),
                          st.one_of(st.sampled_from(["o.img", "out/x", ""]), st.integers()),
                          max_size=4)
image = st.fixed_dictionaries(
    {}, optional={"name": st.sampled_from(["a", "b-1", "bad name", ""]),
                  "kernel": st.sampled_from(["probe", "k.elf", ""]),
                  "outputs": outputs,
                  "verify": st.fixed_dictionaries({}, optional={
                      "expect": st.text(max_size=4),
                      "vmms": st.lists(st.sampled_from(["qemu", "qemu-fc", "xen"]), max_size=2),
                      "timeout": option_values["timeout"],
                      "skip": st.one_of(st.booleans(), st.just("yes"))}),
                  "rofs": st.fixed_dictionaries({}, optional={
                      "manifest": st.sampled_from(["usr.manifest", ""]),
                      "defines": st.dictionaries(st.sampled_from(["a", "b"]),
                                                 st.one_of(st.text(max_size=3), st.integers()))}),
                  "extra": scalars,
                  **option_values})
documents = st.fixed_dictionaries(
    {}, optional={"spec": st.sampled_from([1, 2, "1"]),
                  "options": st.fixed_dictionaries({}, optional={**option_values,
                                                                 "bogus": scalars}),
                  "image": st.lists(image, max_size=3)})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_validator_agrees_with_jsonschema(doc):
    theirs = {tuple(e.absolute_path) for e in VALIDATOR.iter_errors(doc)}
    ours = config.validate(doc)
    assert bool(theirs) == bool(ours), (theirs, ours)
    # every path we report exists in the document (so a line can be found for it)
    for path, _what, _expected in ours:
        node = doc
        for part in path[:-1]:
            node = node[part]


from osvkit.cmdline import Cmdline  # noqa: E402
from osvkit.cmdline import split_cmdline as split  # noqa: E402
from osvkit.cmdline.model import quote_arg  # noqa: E402
option = st.from_regex(r"--[a-z][a-z_-]{0,10}(=[A-Za-z0-9/._=,-]{0,12})?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(option, max_size=5),
       st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                        max_size=8), min_size=1, max_size=4))
def test_rendered_options_split_back(options, app):
    if app[0].startswith("-"):
        app = ["/" + app[0]] + app[1:]
    line = str(Cmdline.from_value({"options": options, "app": app}))
    got = split(line)
    assert list(got.options) == options
    assert got.command == " ".join(quote_arg(a) for a in app)
