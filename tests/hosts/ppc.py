"""The emulated POWER9 host's recipe: Debian's ppc64el kernel running KVM-HV under qemu-system-ppc64.

Two ways to boot it: `nested` (pseries with cap-nested-hv and the VOF firmware: KVM-HV nested in
an LPAR, radix guests only) and `powernv` (powernv9 with skiboot: a bare-metal hypervisor where
KVM_PPC_ALLOCATE_HTAB works; `powernv-hash` adds disable_radix). Used by tests/ppc through
tests/ppc/host/power.py; the facts are in docs/kernel-facts.md#the-emulated-power9-host.
"""

from __future__ import annotations

from .emulated import Host, Mode, Recipe

NESTED = "pseries,cap-nested-hv=on,x-vof=on,usb=off,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"

RECIPE = Recipe(
    name="ppc",
    title="the emulated POWER9",
    arch="ppc64el",
    triplet="powerpc64le-linux-gnu",
    kernel_meta="linux-image-powerpc64le",
    kernel_image="vmlinux-*",
    modules=("arch/powerpc/kvm/kvm.ko", "arch/powerpc/kvm/kvm-hv.ko"),
    kvm_log="kvm",
    kvm_module="kvm_hv",  # without cap-nested-hv kvm-hv fails to load, yet kvm.ko leaves /dev/kvm
    host_fields=("cpu", "platform", "MMU", "firmware"),
    qemu="qemu-system-ppc64",
    qemu_common=("-cpu", "POWER9", "-m", "1G", "-smp", "1", "-nographic", "-no-reboot"),
    console="hvc0",
    modes={
        "nested": Mode(("-M", NESTED, "-vga", "none"), "vof.bin"),  # kvm-hv as a nested HV: fast, radix only
        "powernv": Mode(("-M", "powernv9"), "skiboot.lid"),  # bare-metal HV: ALLOCATE_HTAB works
        "powernv-hash": Mode(("-M", "powernv9"), "skiboot.lid", "disable_radix"),  # hash-MMU host
    },
    install="tests/hosts/install-deps.sh",
    guest_files=("drivers/char/hw_random/pseries-rng.ko",),  # /dev/hwrng of the Linux guests (H_RANDOM)
)

HOST = Host(RECIPE)
