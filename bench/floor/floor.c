/*
 * floor.c: the least a VMM can do, as the benchmark's floor. Opens /dev/kvm,
 * makes one VM with one memory slot and one vCPU in flat real mode, copies a
 * raw guest image to LOAD_ADDR, and runs it: bytes written to port 0x3F8 go
 * to stdout, reads of the UART's line status say "transmitter empty", every
 * other port is ignored, HLT ends the run (status 0). No CPUID, no irqchip.
 *
 * usage: floor IMAGE [LOAD_ADDR=0x7c00] [MEM_BYTES=0x200000] [TIMEOUT_S=60]
 * On HLT it prints one line to stderr:
 *   floor: exits=N loop_us=T us_per_exit=X setup_us=S
 * (loop_us from the first KVM_RUN to the HLT exit, setup_us from main() to it).
 * A watchdog (SIGALRM: immediate_exit + EINTR) bounds every KVM_RUN; status 3
 * on timeout, 2 on a KVM error, 1 on an unexpected exit.
 * Built by bench/suites/common.py with gcc -O2 into a temporary folder.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COM1 0x3f8
#define LSR_THRE_TEMT 0x60
#define TSS_ADDR 0xfffbd000 /* three pages below the 4 GiB BIOS area, as QEMU/kvmtool use */

static volatile struct kvm_run *g_run;
static volatile sig_atomic_t g_fired;

static void on_alarm(int sig) {
	(void)sig;
	g_fired = 1;
	if (g_run)
		g_run->immediate_exit = 1; /* a KVM_RUN about to start returns at once */
	alarm(1); /* re-kick in case the signal landed between two KVM_RUNs */
}

static double now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int die(const char *what) {
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	return 2;
}

int main(int argc, char **argv) {
	double t0 = now_us();
	if (argc < 2) {
		fprintf(stderr, "usage: floor IMAGE [LOAD_ADDR] [MEM_BYTES] [TIMEOUT_S]\n");
		return 2;
	}
	unsigned long load = argc > 2 ? strtoul(argv[2], NULL, 0) : 0x7c00;
	unsigned long mem_size = argc > 3 ? strtoul(argv[3], NULL, 0) : 0x200000;
	unsigned timeout = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 0) : 60;

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return die("open /dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		return die("KVM_SET_TSS_ADDR");

	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return die("mmap guest memory");
	int img = open(argv[1], O_RDONLY);
	if (img < 0)
		return die(argv[1]);
	struct stat st;
	if (fstat(img, &st) < 0 || load + (unsigned long)st.st_size > mem_size) {
		fprintf(stderr, "floor: %s does not fit at %#lx in %#lx bytes\n", argv[1], load, mem_size);
		return 2;
	}
	if (read(img, mem + load, st.st_size) != st.st_size)
		return die("read image");
	close(img);

	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return die("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		return die("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return die("mmap kvm_run");
	g_run = run;

	/* Flat real mode: every segment at base 0, so rip is the load address. */
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return die("KVM_GET_SREGS");
	struct kvm_segment *segs[] = {&sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss};
	for (unsigned i = 0; i < sizeof segs / sizeof *segs; i++) {
		segs[i]->base = 0;
		segs[i]->selector = 0;
		segs[i]->limit = 0xffff;
	}
	sregs.cr0 &= ~1ull;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return die("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = load, .rflags = 2};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return die("KVM_SET_REGS");

	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	alarm(timeout);

	unsigned long exits = 0;
	double t_loop = now_us();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR && g_fired) {
				fprintf(stderr, "floor: watchdog: still running after %u s (%lu exits)\n", timeout, exits);
				return 3;
			}
			if (errno == EINTR)
				continue;
			return die("KVM_RUN");
		}
		exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			unsigned len = run->io.size * run->io.count;
			if (run->io.direction == KVM_EXIT_IO_OUT) {
				if (run->io.port == COM1)
					fwrite(data, 1, len, stdout);
			} else {
				memset(data, run->io.port == COM1 + 5 ? LSR_THRE_TEMT : 0, len);
			}
			break;
		}
		case KVM_EXIT_HLT: {
			double t_end = now_us();
			fflush(stdout);
			fprintf(stderr, "floor: exits=%lu loop_us=%.1f us_per_exit=%.4f setup_us=%.1f\n", exits,
				t_end - t_loop, (t_end - t_loop) / exits, t_loop - t0);
			return 0;
		}
		default:
			fprintf(stderr, "floor: unexpected exit reason %u after %lu exits\n", run->exit_reason, exits);
			return 1;
		}
	}
}
