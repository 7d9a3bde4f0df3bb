"""TorchScript archives as ordinary modules whose layers can be read and edited.

A loaded TorchScript module runs no Python hooks, so no layer of it could be measured or
ablated. Its inlined graph still knows, for every operation, which submodule call it came
from (the scope). We translate the graph to torch.fx with PyTorch's own TorchScript converter
(a private API, pinned with torch), then pass the output of every submodule call through a
`Site`: a module at the submodule's name, holding its parameters, that returns its input.
Hooks on a Site see and may replace exactly what the scripted submodule returned, call by
call, so every analysis treats a TorchScript network like the Python one it was made from.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn

from orisel.kernel.errors import FailedPrecondition, NotFound

# Bookkeeping nodes of a TorchScript graph: they compute no values at run time and carry the
# scope of the attribute they read, not of the call that uses it.
_BOOKKEEPING = frozenset({"prim::Constant", "prim::GetAttr", "prim::CreateObject"})


class Site(nn.Module):
    """One submodule of a scripted network: its parameters, its children, and its output
    passed through `forward` so that hooks observe and can replace it."""

    def __init__(self, original_name: str) -> None:
        super().__init__()
        self.original_name = original_name

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def extra_repr(self) -> str:
        return self.original_name


def module_kind(module: nn.Module) -> str:
    """The class name a module was written as, for Python and scripted modules alike."""
    return module.original_name if isinstance(module, Site) else type(module).__name__


@dataclass(frozen=True)
class _Call:
    """One call of the submodule at `path`: operations first..last of the graph."""

    path: str
    first: int
    last: int


def input_channels(module: nn.Module) -> int:
    """The input channels of a network's first convolution, Python or scripted (3 where it
    has none)."""
    for m in module.modules():
        weight = getattr(m, "weight", None)
        conv = module_kind(m) == "Conv2d" or getattr(m, "original_name", "") == "Conv2d"
        if conv and isinstance(weight, torch.Tensor):
            return int(weight.shape[1]) * int(getattr(m, "groups", 1))
    return 3


def scripted_model(path: Path, input_size: int) -> nn.Module:
    """A TorchScript archive as a module with readable layers (see `from_script`)."""
    if not path.is_file():
        raise NotFound(f"model file {path} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        try:
            script = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise FailedPrecondition(
                f"{path} is neither a torch.export nor a TorchScript archive ({exc!r})"
            ) from exc
    return from_script(script, input_size, str(path), input_channels(script))


def from_script(
    script: torch.jit.ScriptModule, input_size: int, label: str, channels: int = 3
) -> nn.Module:
    """A scripted network as a module whose submodules can be read and ablated, checked
    against the script itself on a batch of random `input_size` images of `channels`."""
    # A copy: the caller's own module keeps its device and training mode.
    script = copy.deepcopy(script).cpu().eval()
    # From a generator of its own, so that loading leaves the caller's random stream alone.
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, channels, input_size, input_size, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter's notes on unused buffers
        try:
            module = _translate(script, example)
        except Exception as exc:
            raise FailedPrecondition(
                f"{label}: this TorchScript network cannot be translated layer by layer "
                f"({exc!r}); export it with torch.export instead"
            ) from exc
        with torch.no_grad():
            want = script(example.clone())
            got = module(example.clone())
    if not (isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor)):
        raise FailedPrecondition(f"{label}: the network must return one tensor of logits")
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise FailedPrecondition(
            f"{label}: the translated network does not reproduce the script's outputs; "
            "export it with torch.export instead"
        )
    return module


def _translate(script: torch.jit.ScriptModule, example: torch.Tensor) -> fx.GraphModule:
    from torch._export import converter as ts

    conv = ts.TS2EPConverter(script, (example,))
    lifted, fqns = ts.get_block_to_lifted_attrs(conv.ts_graph)
    graph_conv = ts.TS2FXGraphConverter(
        conv.ts_graph,
        conv.name_to_param,
        conv.name_to_buffer,
        lifted,
        conv.name_to_non_tensor_attributes,
        conv.name_to_constant,
        fqns,
    )
    gm = graph_conv.convert()
    ops = [n for n in conv.ts_graph.nodes() if n.kind() not in _BOOKKEEPING]
    nodes = graph_conv.name_to_node
    produced = [
        [v for o in op.outputs() if isinstance(v := nodes.get(o.debugName()), fx.Node)]
        for op in ops
    ]
    for name, child in _site_tree(script).named_children():
        setattr(gm, name, child)  # replaces the plain holders fx made for the parameters
    _insert_sites(gm.graph, _calls([_scope_path(op.scopeName()) for op in ops]), produced)
    _functionalise(gm.graph)
    gm.graph.lint()
    gm.recompile()
    return gm.eval()


def _scope_path(scope: str) -> str:
    """'pkg.ResNet::/pkg.Sequential::layer1/pkg.BasicBlock::0' -> 'layer1.0'."""
    parts = [p.rsplit("::", 1)[-1] for p in scope.split("/")[1:]] if scope else []
    return ".".join(parts)


def _calls(paths: list[str]) -> list[_Call]:
    """Every submodule call: a maximal run of consecutive operations inside its scope, so a
    module called twice (a ResNet block's ReLU) has two calls."""
    calls: list[_Call] = []
    open_runs: dict[str, int] = {}
    for i, path in enumerate([*paths, ""]):
        prefixes = {".".join(path.split(".")[:k]) for k in range(1, path.count(".") + 2)}
        prefixes.discard("")
        for name in [n for n in open_runs if n not in prefixes]:
            calls.append(_Call(name, open_runs.pop(name), i - 1))
        for name in prefixes:
            open_runs.setdefault(name, i)
    return calls


def _insert_sites(graph: fx.Graph, calls: list[_Call], produced: list[list[fx.Node]]) -> None:
    """Route each call's single output through its Site, innermost calls first, so that a
    block ending in a ReLU passes through the ReLU's Site and then the block's."""
    mapped = {n for nodes in produced for n in nodes}
    # Nodes the converter adds on its own (a getitem after a conditional) belong to the call
    # whose values they read.
    helpers = [n for n in graph.nodes if n.op.startswith("call_") and n not in mapped]
    sites: list[tuple[_Call, fx.Node]] = []
    for call in sorted(calls, key=lambda c: (-c.path.count("."), c.first)):
        members = {n for i in range(call.first, call.last + 1) for n in produced[i]}
        members |= {s for c, s in sites if call.first <= c.first and c.last <= call.last}
        for node in helpers:
            inputs = [a for a in node.all_input_nodes if a.op.startswith("call_")]
            if inputs and all(a in members for a in inputs):
                members.add(node)
        outputs = [n for n in members if any(u not in members for u in n.users)]
        if len(outputs) != 1:
            continue  # several or no values leave the call: nothing a hook could stand for
        (value,) = outputs
        with graph.inserting_after(value):
            site = graph.call_module(call.path, (value,))
        outside = {u for u in value.users if u not in members and u is not site}
        value.replace_all_uses_with(site, delete_user_cb=outside.__contains__)
        sites.append((call, site))


def _functionalise(graph: fx.Graph) -> None:
    """In-place operations (relu_, add_) become their pure forms where nothing reads the
    mutated input afterwards, so a value a hook captured is never changed behind its back."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for node in graph.nodes:
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        base = target._schema.name.split("::")[-1]
        if not base.endswith("_") or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        pure = getattr(getattr(torch.ops.aten, base[:-1], None), target._overloadname, None)
        if pure is None:
            continue
        if all(order[u] <= order[node] for u in node.args[0].users):
            node.target = pure


def _site_tree(script: torch.jit.ScriptModule) -> Site:
    """A Site for every submodule of the archive, with copies of its parameters and buffers."""
    root = Site(script.original_name)
    for name, sub in script.named_modules():
        if name:
            parent, _, leaf = name.rpartition(".")
            root.get_submodule(parent).add_module(leaf, Site(sub.original_name))
    for name, param in script.named_parameters():
        owner, _, leaf = name.rpartition(".")
        root.get_submodule(owner).register_parameter(
            leaf, nn.Parameter(param.detach().clone(), requires_grad=False)
        )
    for name, buf in script.named_buffers():
        owner, _, leaf = name.rpartition(".")
        root.get_submodule(owner).register_buffer(leaf, buf.detach().clone())
    return root
