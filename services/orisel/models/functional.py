"""Functional activations (`F.relu(x)` in a forward) made into layers that hooks can read.

Forward hooks see module calls only, so a network written with `F.relu` has no activation
layer to measure or ablate. We trace it with torch.fx and pass the output of every
functional activation through a `Site` (`models.scripted`) named after the module whose
forward calls it: the first `F.relu` of `block1` becomes `block1.F.relu`, and the module's
second `F.relu` call is `block1.F.relu:2`, as any reused module is read. Tracing inlines the
network's own modules, so each of their calls is given back a Site too: `block1` still reads
the block's output. The traced network is checked against the original on an example batch;
where tracing fails or the outputs differ, the network is kept as it was and the reason is
returned, to be said where an analysis would need the functional layers.
"""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.nn import functional as F

from orisel.models.scripted import Site, _calls, _insert_sites, module_kind

ORIGIN = "orisel_origin"


def origin(model: nn.Module) -> str:
    """The class a network was written as, "package.Class", through the wrappers orisel
    puts around it (a selected output, a traced network)."""
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict) and ORIGIN in meta:
        return str(meta[ORIGIN])
    return f"{type(model).__module__}.{module_kind(model)}"


# Activations a forward may call as functions; gates (sigmoid, hardsigmoid) are not units.
_FUNCTIONS: dict[object, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    F.relu6: "relu6",
    F.leaky_relu: "leaky_relu",
    F.elu: "elu",
    F.gelu: "gelu",
    F.silu: "silu",
    F.mish: "mish",
    F.hardswish: "hardswish",
}
_METHODS = {"relu": "relu", "relu_": "relu"}


def _kind(node: fx.Node) -> str | None:
    if node.op == "call_function":
        return _FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return _METHODS.get(str(node.target))
    return None


def _owner(node: fx.Node) -> str:
    """The innermost module whose forward made this call ("" at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def _as_site(gm: nn.Module, path: str, kind: str) -> None:
    """The module at `path` of `gm` (a plain holder fx made, or nothing) becomes a Site with
    the same children, parameters and buffers."""
    parent_path, _, leaf = path.rpartition(".")
    parent = gm.get_submodule(parent_path)
    old = getattr(parent, leaf, None)
    if isinstance(old, Site):
        return
    site = Site(kind)
    if isinstance(old, nn.Module):
        for name, child in old.named_children():
            site.add_module(name, child)
        for name, param in old.named_parameters(recurse=False):
            site.register_parameter(name, param)
        for name, buf in old.named_buffers(recurse=False):
            site.register_buffer(name, buf)
        for name, value in vars(old).items():
            if isinstance(value, torch.Tensor) and not name.startswith("_"):
                setattr(site, name, value)
    setattr(parent, leaf, site)


def expose_functional(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, str]:
    """`model` with its functional activations as Sites (see the module's docstring), and
    what was done: "" where the network has none, else a sentence for its provenance."""
    tracer = fx.Tracer()
    try:
        graph = tracer.trace(model)
    except Exception:  # fx raises many types on data-dependent control flow
        # Its module layers are read as they are; where it has no other default layers,
        # `models.layers` says so.
        return model, ""
    acts = [n for n in graph.nodes if _kind(n)]
    if not acts:
        return model, ""
    kinds = {name: module_kind(m) for name, m in model.named_modules()}
    gm = fx.GraphModule(model, graph)
    leaves = {str(n.target) for n in graph.nodes if n.op == "call_module"}
    for node in acts:
        owner = _owner(node)
        path = f"{owner}.F.{_kind(node)}" if owner else f"F.{_kind(node)}"
        if path not in dict(gm.named_modules()):
            gm.add_submodule(path, Site(f"F.{_kind(node)}"))
        with graph.inserting_after(node):
            site = graph.call_module(path, (node,))
        node.replace_all_uses_with(site, delete_user_cb=lambda user, s=site: user is not s)
        site.meta["nn_module_stack"] = {
            **(node.meta.get("nn_module_stack") or {}),
            path: (path, Site),
        }
        leaves.add(path)
    ops = [n for n in graph.nodes if n.op.startswith("call_")]
    paths = [str(n.target) if n.op == "call_module" else _owner(n) for n in ops]
    calls = [
        c
        for c in _calls(paths)
        if c.path not in leaves and c.path in kinds  # the network's own composite modules
    ]
    for path in sorted({c.path for c in calls}, key=lambda p: p.count(".")):
        _as_site(gm, path, kinds[path])
    _insert_sites(graph, calls, [[n] for n in ops])
    graph.lint()
    gm.recompile()
    gm.eval()
    with torch.no_grad():
        want, got = model(example), gm(example)
    same = (
        isinstance(want, torch.Tensor)
        and isinstance(got, torch.Tensor)
        and want.shape == got.shape
        and torch.allclose(want, got, rtol=1e-4, atol=1e-5)
    )
    if not same:
        return model, "traced by torch.fx, but the traced network's outputs differ"
    gm.meta[ORIGIN] = origin(model)  # the family rules of `models.layers` still apply
    sites = sorted({str(n.target) for n in graph.nodes if ".F." in f".{n.target}"})
    return gm, f"functional activations read as {', '.join(sites)}"
