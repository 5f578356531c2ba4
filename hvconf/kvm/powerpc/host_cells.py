"""Device-tree cells only the host knows, written into the DTB image before the launcher loads it.

Under KVM an e500 guest reads the host's timebase (mftb is not trapped), so
its cpu nodes must carry the host's timebase-frequency, and QEMU copies the
host's clock-frequency too (hw/ppc/e500.c: kvmppc_get_tbfreq,
kvmppc_get_clockfreq). plan.launcher.epapr.host_cells = {image, cells: {property:
[offsets]}} names the image and, per property, where its 4-byte big-endian
values sit in it (hvconf/platforms/ppc_e500.py finds them in the DTB it built).
`patch` reads each property from the host's first cpu node in its own device
tree (/proc/device-tree/cpus/*/, as QEMU's kvmppc_read_int_cpu_dt does) and
writes it at every offset. A host that has no such property keeps the built
value (QEMU's 400 MHz) and the note says so. Tests: tests/kvm/test_buffers_e500_spin.py.
"""

from __future__ import annotations

import os

from hvconf.contract import PlanError
from hvconf.kvm.images import Loaded

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from hvconf.contract import Plan

HOST_CPUS = "/proc/device-tree/cpus"
WHERE = "plan.launcher.epapr.host_cells"


def host_cell(name: str, cpus: str = HOST_CPUS) -> int | None:
    """Property `name` of the host's first cpu node (device_type "cpu") as a u32, or None."""
    try:
        nodes = sorted(os.listdir(cpus))
    except OSError:
        return None
    for node in nodes:
        try:
            with open(os.path.join(cpus, node, "device_type"), "rb") as file:
                if file.read(8) != b"cpu\0":
                    continue
            with open(os.path.join(cpus, node, name), "rb") as file:
                data = file.read(9)
        except OSError:
            continue
        value = int.from_bytes(data, "big") if len(data) in (4, 8) else None  # one cell, or two (QEMU reads both)
        return value if value is not None and value < 1 << 32 else None
    return None


def _section(plan: Plan) -> dict[str, list[int]] | None:
    epapr = plan.launcher.get("epapr")
    raw = epapr.get("host_cells") if isinstance(epapr, dict) else None
    if raw is None:
        return None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if (not isinstance(cells, dict) or raw.get("image") != "fdt"
            or not all(isinstance(v, list) and all(isinstance(o, int) and not isinstance(o, bool) for o in v)
                       for v in cells.values())):  # fmt: skip
        raise PlanError(f'{WHERE}: should be {{image: "fdt", cells: {{property: [offsets]}}}}')
    return cells


def patch(plan: Plan, loaded: list[Loaded], note: Callable[[str], None], cpus: str = HOST_CPUS) -> list[Loaded]:
    """`loaded` with the host's values written into the DTB image where the plan says."""
    cells = _section(plan)
    if cells is None:
        return loaded
    out = []
    for image in loaded:
        if image.name != "fdt":
            out.append(image)
            continue
        [(gpa, data)] = image.chunks  # a dtb image is one flat chunk
        blob = bytearray(data)
        for name, offsets in cells.items():
            if not all(0 <= at <= len(blob) - 4 for at in offsets):
                raise PlanError(f"{WHERE}: an offset of {name} lies outside the {len(blob)}-byte DTB")
            value = host_cell(name, cpus)
            if value is None:
                note(f"the host's device tree has no cpu {name}; the guest's keeps the built value")
                continue
            for at in offsets:
                blob[at : at + 4] = value.to_bytes(4, "big")
            note(f"{name} = {value} from the host ({len(offsets)} cpu nodes)")
        out.append(Loaded(image.name, ((gpa, bytes(blob)),), image.entry))
    return out
