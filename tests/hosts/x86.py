"""The emulated x86_64 host's recipe: Debian's amd64 kernel running kvm_amd under qemu-system-x86_64 (TCG).

QEMU's TCG emulates AMD SVM (with nested paging), not Intel VMX, so the KVM in this host is
kvm_amd: a complete KVM where `vmmcall` returns, unlike the nested paravirtual KVM of the
development machine. The .deb has no modules.dep, so the modules load in the order below (the
harness checks it against each module's `depends=`): kvm needs irqbypass, kvm-amd needs kvm and
ccp. Used by tests/x86; the facts are in docs/kernel-facts.md#the-emulated-x86_64-host.
CLI: python tests/hosts/x86.py prepare | run DIR | check [--boot].
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__:
    from .emulated import Host, Mode, Recipe
else:  # run as a script: python tests/hosts/x86.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hosts.emulated import Host, Mode, Recipe

RECIPE = Recipe(
    name="x86",
    title="the emulated x86_64",
    arch="amd64",
    triplet="x86_64-linux-gnu",
    kernel_meta="linux-image-amd64",
    kernel_image="vmlinuz-*",
    modules=("virt/lib/irqbypass.ko", "arch/x86/kvm/kvm.ko", "drivers/crypto/ccp/ccp.ko", "arch/x86/kvm/kvm-amd.ko"),
    kvm_module="kvm_amd",  # kvm.ko alone makes no /dev/kvm on x86
    kvm_log="Nested|SVM: kvm",  # "kvm: Nested Virtualization enabled", "SVM: kvm: Nested Paging enabled"
    host_fields=("vendor_id", "model name"),
    qemu="qemu-system-x86_64",
    # -cpu max: every feature TCG emulates, SVM and NPT included; one vCPU (TCG runs it on one host core)
    qemu_common=("-accel", "tcg", "-cpu", "max", "-m", "2G", "-smp", "1", "-nographic", "-no-reboot",
                 "-nic", "none", "-vga", "none"),  # no iPXE ROM, no VGA BIOS: the serial console is all it uses
    console="ttyS0",
    modes={"svm": Mode(("-M", "pc"), "bios-256k.bin")},  # SeaBIOS, then QEMU's linuxboot option ROM
    install="tests/hosts/install-deps.sh",
)

HOST = Host(RECIPE)

if __name__ == "__main__":
    sys.exit(HOST.main(prog="x86.py"))
