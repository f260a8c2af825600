/*
 * Test target for `memdump process` / `memdump regions` (see test/helpers/target.ts).
 *
 * A multi-threaded program that plants known strings in memory, loads known constants into registers and
 * then parks every thread forever in a raw `pause` syscall, so a dump taken at any later moment sees the same
 * state. Built by the tests with `gcc -O0 -g -pthread`.
 *
 *   target [--threads N] [--magic HEX16] [--anon-mib N] [--rwx] [--memfd] [--deleted-exec] [--traced]
 *          [--memfd-exec]
 *
 * Every thread i (0 = main, 1..N = workers) holds the string MEMDUMP-STACK-<i>-<magic> in a local array of
 * its own C frame (main / worker), then calls park(i), which in ONE asm block loads
 *   reg = 0x1200000000000000 + i*0x10 + <x86 register number>
 * into rdx(2) rbx(3) rsi(6) rdi(7) r8..r10 and r12..r15, and loops on `mov $34,%eax; syscall` (pause) forever.
 * syscall clobbers only rax, rcx and r11, so whenever the thread is stopped those registers hold the constants.
 * Stack frames seen by a debugger: park <- worker <- start_thread / park <- main <- __libc_start_call_main.
 *
 * Main also keeps MEMDUMP-HEAP-<magic> in a malloc'd buffer and MEMDUMP-DATA-<magic> in a global in .data.
 *
 * When every thread has reached the barrier before park(), main prints ONE JSON line on stdout (see
 * print_json()) and parks itself. The line is printed just BEFORE the threads enter the syscall; the harness
 * (target.ts) waits until /proc/PID/task/TID/syscall shows syscall 34 for every thread before using it.
 *
 * Options:
 *   --threads N     worker threads (default 3; default 0 in the child of --traced)
 *   --magic HEX     the 64-bit magic (16 hex digits) instead of a random one
 *   --anon-mib N    mmap N MiB anonymous private memory; 8-byte word j holds mix64(magic + (j+1)*GOLDEN)
 *                   (splitmix64's output function; see anonWord() in target.ts), so every page is resident
 *                   and non-zero
 *   --rwx           an anonymous rwxp mapping holding CODE followed by MEMDUMP-RWX-<magic>, and an anonymous
 *                   r-xp mapping holding the first page of /proc/self/exe (an ELF header in anonymous memory)
 *   --memfd         memfd_create("payload") with CODE + MEMDUMP-MEMFD-<magic>, mapped r-xp private:
 *                   `/memfd:payload (deleted)` in maps
 *   --deleted-exec  a copy of /proc/self/exe in $TMPDIR (or /tmp), mapped r-xp private, then unlinked:
 *                   `<path> (deleted)` in maps
 *   --traced        fork; the child does PTRACE_TRACEME and then runs the program as usual (its main thread is
 *                   traced by the parent for good, so PTRACE_SEIZE/ATTACH by anyone else fails with EPERM);
 *                   the parent relays the child's JSON line with "tracedPid" and "tracerPid" added and waits
 *                   forever, restarting the child at once if it ever stops (so it is never left stopped)
 *   --memfd-exec    first re-execute from memfd_create("implant") holding a copy of /proc/self/exe (with the
 *                   remaining arguments), so the program text is mapped from `/memfd:implant (deleted)`
 *
 * Any failure prints "target: <what>: <strerror>" on stderr and exits with status 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define HAVE_RSEQ 1
#endif

#define MAX_THREADS 256
#define MARKER_LEN 64
#define PAGE 4096
#define REG_BASE 0x1200000000000000ULL

extern char **environ;

/* x86-64 register numbers of the registers park() loads, in the order of park()'s asm. */
static const struct {
  const char *name;
  unsigned num;
} KNOWN_REGS[] = {{"rdx", 2}, {"rbx", 3}, {"rsi", 6}, {"rdi", 7}, {"r8", 8},   {"r9", 9},
                  {"r10", 10}, {"r12", 12}, {"r13", 13}, {"r14", 14}, {"r15", 15}};

/* push %rbp; mov %rsp,%rbp; mov $0x2a,%eax; pop %rbp; ret */
static const unsigned char CODE[] = {0x55, 0x48, 0x89, 0xe5, 0xb8, 0x2a, 0x00, 0x00, 0x00, 0x5d, 0xc3};

/* In .data (initialised, writable); the hex part is filled in at start-up. */
char data_marker[MARKER_LEN] = "MEMDUMP-DATA-0000000000000000";

static uint64_t magic;
static int nworkers = 3;
static pthread_barrier_t barrier;
static pid_t tids[MAX_THREADS + 1];
static char *stack_markers[MAX_THREADS + 1];
static uint64_t thread_pointers[MAX_THREADS + 1];

/* The thread pointer (fs_base): on x86-64 the TCB's first word points to itself. */
static uint64_t thread_pointer(void) {
  uint64_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}

/* Bytes of glibc's rseq area the kernel may write (0 when glibc did not register one). */
static size_t rseq_bytes(void) {
#ifdef HAVE_RSEQ
  if (__rseq_size == 0) return 0;
  return __rseq_size > 32 ? __rseq_size : 32;
#else
  return 0;
#endif
}

static uint64_t rseq_addr(int i) {
#ifdef HAVE_RSEQ
  return thread_pointers[i] + (uint64_t)__rseq_offset;
#else
  (void)i;
  return 0;
#endif
}

static void die(const char *fmt, ...) {
  int e = errno;
  va_list ap;
  fputs("target: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (e) fprintf(stderr, ": %s", strerror(e));
  fputc('\n', stderr);
  _exit(2);
}

static void die_rc(int rc, const char *what) {
  errno = rc;
  die("%s", what);
}

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/*
 * Park thread `idx` forever with known register values. Never returns. rbp and rsp are left alone so the
 * debugger can unwind through this C frame; the base value is read from memory (`m`) because every other
 * general register is clobbered.
 */
void park(int idx) {
  uint64_t base = REG_BASE + (uint64_t)idx * 0x10;
  __asm__ volatile(
      "mov %0, %%rdx\n\t"
      "lea 3(%%rdx), %%rbx\n\t"
      "lea 6(%%rdx), %%rsi\n\t"
      "lea 7(%%rdx), %%rdi\n\t"
      "lea 8(%%rdx), %%r8\n\t"
      "lea 9(%%rdx), %%r9\n\t"
      "lea 10(%%rdx), %%r10\n\t"
      "lea 12(%%rdx), %%r12\n\t"
      "lea 13(%%rdx), %%r13\n\t"
      "lea 14(%%rdx), %%r14\n\t"
      "lea 15(%%rdx), %%r15\n\t"
      "add $2, %%rdx\n\t"
      "1:\n\t"
      "mov $34, %%eax\n\t" /* __NR_pause */
      "syscall\n\t"
      "jmp 1b\n\t"
      :
      : "m"(base)
      : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "memory");
  __builtin_unreachable();
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

void *worker(void *arg) {
  int idx = (int)(intptr_t)arg;
  char marker[MARKER_LEN];
  snprintf(marker, sizeof marker, "MEMDUMP-STACK-%d-%016" PRIx64, idx, magic);
  stack_markers[idx] = marker;
  tids[idx] = gettid_();
  thread_pointers[idx] = thread_pointer();
  int rc = pthread_barrier_wait(&barrier);
  if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die_rc(rc, "pthread_barrier_wait");
  park(idx);
  return NULL;
}

/* ------------------------------------------------------------------------------------------------------ */
/* helpers */

static void write_all(int fd, const void *buf, size_t len, const char *what) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write %s", what);
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Copy /proc/self/exe into fd; returns its size. */
static size_t copy_self_exe(int out, const char *what) {
  int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (in < 0) die("open /proc/self/exe");
  char buf[65536];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("read /proc/self/exe");
    }
    if (n == 0) break;
    write_all(out, buf, (size_t)n, what);
    total += (size_t)n;
  }
  if (close(in) != 0) die("close /proc/self/exe");
  return total;
}

static void *map_anon(size_t len, int prot, const char *what) {
  void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap %s", what);
  return p;
}

/* A page with CODE at 0 and the marker string right after it. */
static void fill_code_page(unsigned char *page, const char *marker) {
  memset(page, 0, PAGE);
  memcpy(page, CODE, sizeof CODE);
  strcpy((char *)page + sizeof CODE, marker);
}

static long parse_long(const char *s, const char *opt, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < min || v > max) {
    errno = 0;
    die("bad value for %s: %s", opt, s);
  }
  return v;
}

/* ------------------------------------------------------------------------------------------------------ */
/* JSON */

static char json[1 << 16];
static size_t json_len;

static void jp(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(json + json_len, sizeof json - json_len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof json - json_len) {
    errno = 0;
    die("JSON line too long");
  }
  json_len += (size_t)n;
}

/* Strings here are paths and markers; escape what JSON requires. */
static void jstr(const char *s) {
  jp("\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') jp("\\%c", *p);
    else if (*p < 0x20) jp("\\u%04x", *p);
    else jp("%c", *p);
  }
  jp("\"");
}

static int first_marker = 1;
static void jmarker(const char *name, const void *addr, const char *text) {
  jp("%s", first_marker ? "" : ",");
  first_marker = 0;
  jstr(name);
  jp(":{\"addr\":\"%p\",\"text\":", addr);
  jstr(text);
  jp("}");
}

/* ------------------------------------------------------------------------------------------------------ */

static void traced_parent(pid_t child, int rfd) {
  /* Relay the child's JSON line, adding the two pids. */
  static char line[sizeof json];
  size_t len = 0;
  for (;;) {
    if (len == sizeof line - 1) {
      errno = 0;
      die("child JSON line too long");
    }
    ssize_t n = read(rfd, line + len, sizeof line - 1 - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("read from traced child");
    }
    if (n == 0) break;
    len += (size_t)n;
    if (memchr(line, '\n', len)) break;
  }
  line[len] = 0;
  char *nl = strchr(line, '\n');
  if (!nl || nl == line || nl[-1] != '}') {
    errno = 0;
    die("traced child did not report (got %zu bytes)", len);
  }
  nl[-1] = 0;
  printf("%s,\"tracedPid\":%d,\"tracerPid\":%d}\n", line, (int)child, (int)getpid());
  if (fflush(stdout) != 0) die("fflush stdout");
  close(rfd);
  for (;;) {
    int st;
    pid_t r = waitpid(child, &st, __WALL);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("waitpid");
    }
    if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
    if (WIFSIGNALED(st)) _exit(128 + WTERMSIG(st));
    if (WIFSTOPPED(st)) {
      /* Never leave the child stopped; deliver anything but stop signals. */
      int sig = WSTOPSIG(st);
      if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU || sig == SIGTRAP) sig = 0;
      if (ptrace(PTRACE_CONT, child, NULL, (void *)(intptr_t)sig) != 0 && errno != ESRCH) die("PTRACE_CONT");
    }
  }
}

/*
 * --behave MODE DELAY_MS [N] [--comm NAME]: a single-purpose target for `memdump watch` tests, which must see a
 * process CHANGE at a known moment (the parked target above never changes). Prints {"pid":P,"behave":MODE,
 * "t":EPOCH_MS} at once, sleeps DELAY_MS, prints {"event":"go","t":EPOCH_MS} and then:
 *   burn N     busy-loops N ms (0: forever), prints {"event":"stop",...}, then idles
 *   grow N     allocates and touches N MiB, then idles
 *   threads N  starts N threads that idle
 *   fds N      opens /dev/null N times, then idles
 *   segv       writes through a null pointer (SIGSEGV, no handler)
 *   abort      abort() (SIGABRT)
 *   segv-on-usr2, abort-on-usr2
 *              idle until SIGUSR2 arrives (a handler sets a flag), then crash as above from main's code: a test
 *              starts the crash only once its watcher is attached
 *   sigusr1    idles; a SIGUSR1 handler is installed before the first line and each receipt prints
 *              {"event":"sigusr1","t":...} (the signal reached the program: nobody swallowed it)
 *   idle       idles
 * "t" is CLOCK_REALTIME in ms, comparable with the report times of a dump.
 */
static volatile sig_atomic_t usr1_count, usr2_seen;
static void on_usr1(int sig) {
  (void)sig;
  usr1_count++;
}
static void on_usr2(int sig) {
  (void)sig;
  usr2_seen = 1;
}
static void crash(const char *how) {
  if (strcmp(how, "abort") == 0) abort();
  volatile int *p = NULL;
  *p = 1;
}
static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static void event(const char *name) {
  printf("{\"event\":\"%s\",\"t\":%lld}\n", name, now_ms());
  fflush(stdout);
}
static void *idle_thread(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}
static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
static int behave(int argc, char **argv) {
  if (argc < 4) {
    errno = 0;
    die("usage: --behave MODE DELAY_MS [N] [--comm NAME]");
  }
  const char *mode = argv[2];
  long delay = parse_long(argv[3], "--behave DELAY_MS", 0, 3600000);
  long n = 0;
  int i = 4;
  if (i < argc && strcmp(argv[i], "--comm") != 0) n = parse_long(argv[i++], "--behave N", 0, 1 << 20);
  if (i + 1 < argc && strcmp(argv[i], "--comm") == 0 && prctl(PR_SET_NAME, argv[i + 1]) != 0) die("PR_SET_NAME");
  pid_t ppid0 = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl PR_SET_PDEATHSIG");
  if (getppid() != ppid0) _exit(3);
  if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY) != 0 && errno != EINVAL) die("prctl PR_SET_PTRACER");
  if (strcmp(mode, "sigusr1") == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    if (sigaction(SIGUSR1, &sa, NULL) != 0) die("sigaction");
  }
  const char *on_usr2_mode = strstr(mode, "-on-usr2");
  if (on_usr2_mode) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    if (sigaction(SIGUSR2, &sa, NULL) != 0) die("sigaction");
  }
  printf("{\"pid\":%d,\"behave\":\"%s\",\"t\":%lld}\n", (int)getpid(), mode, now_ms());
  fflush(stdout);
  sleep_ms(delay);
  event("go");
  if (strcmp(mode, "burn") == 0) {
    long long end = now_ms() + n;
    volatile unsigned long x = 0;
    while (n == 0 || now_ms() < end) x++;
    event("stop");
  } else if (strcmp(mode, "grow") == 0) {
    size_t bytes = (size_t)n << 20;
    char *p = malloc(bytes);
    if (!p) die("malloc");
    memset(p, 0x5a, bytes);
    event("grown");
  } else if (strcmp(mode, "threads") == 0) {
    for (long k = 0; k < n; k++) {
      pthread_t th;
      int rc = pthread_create(&th, NULL, idle_thread, NULL);
      if (rc) die_rc(rc, "pthread_create");
    }
    event("started");
  } else if (strcmp(mode, "fds") == 0) {
    for (long k = 0; k < n; k++)
      if (open("/dev/null", O_RDONLY) < 0) die("open /dev/null");
    event("opened");
  } else if (strcmp(mode, "segv") == 0 || strcmp(mode, "abort") == 0) {
    crash(mode);
  } else if (!on_usr2_mode && strcmp(mode, "sigusr1") != 0 && strcmp(mode, "idle") != 0) {
    errno = 0;
    die("unknown --behave mode %s", mode);
  }
  sig_atomic_t seen = 0;
  for (;;) {
    pause();
    if (on_usr2_mode && usr2_seen) {
      event("crash");
      crash(strncmp(mode, "abort", 5) == 0 ? "abort" : "segv");
    }
    while (seen < usr1_count) {
      seen++;
      event("sigusr1");
    }
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--behave") == 0) return behave(argc, argv);
  int anon_mib = 0, rwx = 0, use_memfd = 0, deleted_exec = 0, traced = 0, threads_given = 0, magic_given = 0;

  /* --memfd-exec first: re-execute from a memfd with the other arguments. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--memfd-exec") == 0) {
      int fd = memfd_create("implant", MFD_CLOEXEC);
      if (fd < 0) die("memfd_create implant");
      copy_self_exe(fd, "memfd implant");
      char **nargv = calloc((size_t)argc, sizeof *nargv);
      if (!nargv) die("calloc");
      int k = 0;
      for (int j = 0; j < argc; j++)
        if (j != i) nargv[k++] = argv[j];
      nargv[k] = NULL;
      fexecve(fd, nargv, environ);
      die("fexecve memfd implant");
    }
  }

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--threads") == 0 && v) {
      nworkers = (int)parse_long(v, a, 0, MAX_THREADS);
      threads_given = 1;
      i++;
    } else if (strcmp(a, "--anon-mib") == 0 && v) {
      anon_mib = (int)parse_long(v, a, 1, 1 << 20);
      i++;
    } else if (strcmp(a, "--magic") == 0 && v) {
      char *end;
      errno = 0;
      magic = strtoull(v, &end, 16);
      if (errno || *end || strlen(v) != 16) {
        errno = 0;
        die("bad value for --magic (16 hex digits): %s", v);
      }
      magic_given = 1;
      i++;
    } else if (strcmp(a, "--rwx") == 0) {
      rwx = 1;
    } else if (strcmp(a, "--memfd") == 0) {
      use_memfd = 1;
    } else if (strcmp(a, "--deleted-exec") == 0) {
      deleted_exec = 1;
    } else if (strcmp(a, "--traced") == 0) {
      traced = 1;
    } else {
      errno = 0;
      die("unknown or incomplete argument: %s", a);
    }
  }

  /* Die with the harness; and let any tracer attach even under Yama ptrace_scope=1. */
  pid_t ppid0 = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl PR_SET_PDEATHSIG");
  if (getppid() != ppid0) _exit(3);
  if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY) != 0 && errno != EINVAL) die("prctl PR_SET_PTRACER");

  if (!magic_given) {
    if (getrandom(&magic, sizeof magic, 0) != (ssize_t)sizeof magic) die("getrandom");
  }

  if (traced) {
    if (!threads_given) nworkers = 0;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) die("pipe2");
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child > 0) {
      close(pfd[1]);
      traced_parent(child, pfd[0]);
    }
    close(pfd[0]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl PR_SET_PDEATHSIG (child)");
    if (getppid() != parent) _exit(3);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) die("PTRACE_TRACEME");
    /* The child reports through the pipe; the parent prints. */
    if (dup2(pfd[1], STDOUT_FILENO) < 0) die("dup2");
    close(pfd[1]);
  }

  char magic_hex[17];
  snprintf(magic_hex, sizeof magic_hex, "%016" PRIx64, magic);
  memcpy(data_marker + strlen("MEMDUMP-DATA-"), magic_hex, 16);

  char *heap_marker = malloc(256);
  if (!heap_marker) die("malloc");
  memset(heap_marker, 0, 256);
  snprintf(heap_marker, 256, "MEMDUMP-HEAP-%s", magic_hex);

  char main_marker[MARKER_LEN];
  snprintf(main_marker, sizeof main_marker, "MEMDUMP-STACK-%d-%s", 0, magic_hex);
  stack_markers[0] = main_marker;
  tids[0] = gettid_();
  thread_pointers[0] = thread_pointer();

  /* --anon-mib */
  uint64_t *anon = NULL;
  size_t anon_bytes = (size_t)anon_mib << 20;
  if (anon_mib) {
    anon = map_anon(anon_bytes, PROT_READ | PROT_WRITE, "anon");
    const uint64_t golden = 0x9e3779b97f4a7c15ULL;
    for (size_t j = 0; j < anon_bytes / 8; j++) anon[j] = mix64(magic + (uint64_t)(j + 1) * golden);
  }

  /* --rwx */
  unsigned char *rwx_page = NULL, *elf_page = NULL;
  char rwx_marker[MARKER_LEN];
  if (rwx) {
    snprintf(rwx_marker, sizeof rwx_marker, "MEMDUMP-RWX-%s", magic_hex);
    rwx_page = map_anon(PAGE, PROT_READ | PROT_WRITE | PROT_EXEC, "rwx");
    fill_code_page(rwx_page, rwx_marker);
    if (((int (*)(void))(void *)rwx_page)() != 42) {
      errno = 0;
      die("code in the rwx page did not return 42");
    }
    elf_page = map_anon(PAGE, PROT_READ | PROT_WRITE, "elf header");
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open /proc/self/exe");
    ssize_t n = pread(fd, elf_page, PAGE, 0);
    if (n != PAGE) die("pread /proc/self/exe (%zd)", n);
    close(fd);
    if (mprotect(elf_page, PAGE, PROT_READ | PROT_EXEC) != 0) die("mprotect elf header");
  }

  /* --memfd */
  unsigned char *memfd_page = NULL;
  char memfd_marker[MARKER_LEN];
  if (use_memfd) {
    snprintf(memfd_marker, sizeof memfd_marker, "MEMDUMP-MEMFD-%s", magic_hex);
    int fd = memfd_create("payload", MFD_CLOEXEC);
    if (fd < 0) die("memfd_create payload");
    unsigned char page[PAGE];
    fill_code_page(page, memfd_marker);
    write_all(fd, page, PAGE, "memfd payload");
    memfd_page = mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (memfd_page == MAP_FAILED) die("mmap memfd payload");
    close(fd);
    if (((int (*)(void))(void *)memfd_page)() != 42) {
      errno = 0;
      die("code in the memfd page did not return 42");
    }
  }

  /* --deleted-exec */
  unsigned char *del_map = NULL;
  size_t del_size = 0;
  char del_path[PATH_MAX];
  if (deleted_exec) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    snprintf(del_path, sizeof del_path, "%s/memdump-target-XXXXXX", tmp);
    int fd = mkostemp(del_path, O_CLOEXEC);
    if (fd < 0) die("mkostemp %s", del_path);
    del_size = copy_self_exe(fd, del_path);
    del_map = mmap(NULL, del_size, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (del_map == MAP_FAILED) die("mmap %s", del_path);
    if (unlink(del_path) != 0) die("unlink %s", del_path);
    close(fd);
  }

  /* workers */
  int rc = pthread_barrier_init(&barrier, NULL, (unsigned)nworkers + 1);
  if (rc) die_rc(rc, "pthread_barrier_init");
  for (int i = 1; i <= nworkers; i++) {
    pthread_t th;
    rc = pthread_create(&th, NULL, worker, (void *)(intptr_t)i);
    if (rc) die_rc(rc, "pthread_create");
    rc = pthread_detach(th);
    if (rc) die_rc(rc, "pthread_detach");
  }
  rc = pthread_barrier_wait(&barrier);
  if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die_rc(rc, "pthread_barrier_wait");

  /* The JSON line. */
  char exe[PATH_MAX];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (el < 0) die("readlink /proc/self/exe");
  exe[el] = 0;

  jp("{\"pid\":%d,\"magic\":\"%s\",\"exe\":", (int)getpid(), magic_hex);
  jstr(exe);
  jp(",\"tids\":[");
  for (int i = 0; i <= nworkers; i++) jp("%s%d", i ? "," : "", (int)tids[i]);
  jp("],\"heap\":\"%p\",\"data\":\"%p\",\"stacks\":[", (void *)heap_marker, (void *)data_marker);
  for (int i = 0; i <= nworkers; i++) jp("%s\"%p\"", i ? "," : "", (void *)stack_markers[i]);
  jp("],\"markers\":{");
  for (int i = 0; i <= nworkers; i++) {
    char name[32];
    snprintf(name, sizeof name, "stack-%d", i);
    jmarker(name, stack_markers[i], stack_markers[i]);
  }
  jmarker("heap", heap_marker, heap_marker);
  jmarker("data", data_marker, data_marker);
  if (rwx) jmarker("rwx", rwx_page + sizeof CODE, rwx_marker);
  if (use_memfd) jmarker("memfd", memfd_page + sizeof CODE, memfd_marker);
  jp("},\"regs\":[");
  for (int i = 0; i <= nworkers; i++) {
    jp("%s{\"tid\":%d", i ? "," : "", (int)tids[i]);
    for (size_t k = 0; k < sizeof KNOWN_REGS / sizeof KNOWN_REGS[0]; k++)
      jp(",\"%s\":\"0x%" PRIx64 "\"", KNOWN_REGS[k].name, REG_BASE + (uint64_t)i * 0x10 + KNOWN_REGS[k].num);
    jp(",\"fs_base\":\"0x%" PRIx64 "\"}", thread_pointers[i]);
  }
  jp("],\"rseqSize\":%zu,\"rseq\":[", rseq_bytes());
  for (int i = 0; i <= nworkers && rseq_bytes(); i++) jp("%s\"0x%" PRIx64 "\"", i ? "," : "", rseq_addr(i));
  jp("],\"code\":\"");
  for (size_t k = 0; k < sizeof CODE; k++) jp("%02x", CODE[k]);
  jp("\"");
  if (anon) jp(",\"anon\":{\"addr\":\"%p\",\"bytes\":%zu}", (void *)anon, anon_bytes);
  if (rwx) jp(",\"rwx\":\"%p\",\"elfHeader\":\"%p\"", (void *)rwx_page, (void *)elf_page);
  if (use_memfd) jp(",\"memfd\":\"%p\"", (void *)memfd_page);
  if (deleted_exec) {
    jp(",\"deletedExec\":{\"addr\":\"%p\",\"bytes\":%zu,\"path\":", (void *)del_map, del_size);
    jstr(del_path);
    jp("}");
  }
  jp("}\n");
  write_all(STDOUT_FILENO, json, json_len, "stdout");

  park(0);
}
