/*
 * berth-seccomp: the loader of berth's precompiled seccomp programs, run as the first program
 * of a container's process (bind-mounted read-only at /dev/.berth-seccomp).
 *
 *     berth-seccomp [__seccomp] [--] COMMAND [ARG...]
 *
 * It reads the program from fd 3 (a header record with the seccomp(2) flags and berth's magic,
 * then the BPF instructions, all 8-byte little-endian records; see runtime/seccomp_fast.go),
 * installs it with TSYNC under the no_new_privs libcontainer set, and execs COMMAND through
 * PATH. It refuses to run the command unconfined. Exit codes follow the shell's: 127 when the
 * command is not found, 126 when it cannot be run.
 *
 * It does exactly what berth-monitor's Go loader (monitor.SeccompExec) does, in a program that
 * starts in well under a millisecond: it runs once for every container start, exec and
 * healthcheck probe, where the Go runtime's start-up cost several milliseconds of CPU each.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PROGRAM_MAGIC 0xbe47f1a6u
#define MAX_INSNS 4096 /* the kernel's BPF_MAXINSNS */

static uint8_t raw[8 * (MAX_INSNS + 1) + 8];
static struct sock_filter filter[MAX_INSNS];

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail(int code, const char *what, const char *detail)
{
	fprintf(stderr, "berth: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	return code;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && strcmp(argv[i], "__seccomp") == 0)
		i++;
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;

	size_t n = 0;
	for (;;) {
		ssize_t r = read(3, raw + n, sizeof raw - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			n = 0;
			break;
		}
		if (r == 0 || (n += (size_t)r) == sizeof raw)
			break;
	}
	close(3);
	if (n <= 8 || n % 8 != 0 || n / 8 > MAX_INSNS + 1 || le32(raw + 4) != PROGRAM_MAGIC)
		return fail(126, "no seccomp program: refusing to run unconfined", NULL);
	if (i >= argc)
		return fail(127, "no command", NULL);

	size_t len = n / 8 - 1;
	for (size_t k = 0; k < len; k++) {
		const uint8_t *b = raw + 8 * (k + 1);
		filter[k].code = (uint16_t)(b[0] | b[1] << 8);
		filter[k].jt = b[2];
		filter[k].jf = b[3];
		filter[k].k = le32(b + 4);
	}
	struct sock_fprog prog = {.len = (unsigned short)len, .filter = filter};
	unsigned long flags = le32(raw) | SECCOMP_FILTER_FLAG_TSYNC;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) != 0)
		return fail(126, "load seccomp filter", strerror(errno));

	execvp(argv[i], argv + i);
	int e = errno;
	fprintf(stderr, "berth: exec %s: %s\n", argv[i], strerror(e));
	return e == ENOENT || e == ENOTDIR ? 127 : 126;
}
