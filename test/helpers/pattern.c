/*
 * pattern SEED PAGES READYFILE
 *
 * In-guest helper for the QEMU oracle tests. Maps PAGES anonymous 4 KiB
 * pages, fills each one with a recognisable, seed-dependent pattern, locks
 * them in RAM, reports where they live physically, signals readiness and
 * then sleeps forever so the pages stay resident while the host (or
 * memdump inside the guest) takes a dump.
 *
 * Page layout (must match patternPage() in test/helpers/pattern.ts):
 *   bytes  0..15   "MEMDUMP-PATTERN\0"
 *   bytes 16..23   seed, u64 little-endian
 *   bytes 24..31   page index, u64 little-endian
 *   bytes 32..4095 508 u64 little-endian words from splitmix64 whose state
 *                  starts at (seed ^ index)
 *
 * Files written (in this order):
 *   READYFILE.pfns  one line per page: "<index> <pfn-hex>" taken from
 *                   /proc/self/pagemap (pfn 0 when unavailable), written
 *                   after the pages are populated and locked
 *   READYFILE       "<pid>\n", written to a temporary name, fsync'd and
 *                   renamed, so a waiter never sees a partial file
 *
 * Build: gcc -O2 -static -o pattern pattern.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u
#define MAGIC "MEMDUMP-PATTERN"

static uint64_t splitmix64_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void fill_page(unsigned char *p, uint64_t seed, uint64_t index) {
  memset(p, 0, 16);
  memcpy(p, MAGIC, sizeof(MAGIC)); /* 15 chars + NUL = 16 bytes */
  put_le64(p + 16, seed);
  put_le64(p + 24, index);
  uint64_t state = seed ^ index;
  for (unsigned off = 32; off < PAGE; off += 8) put_le64(p + off, splitmix64_next(&state));
}

static int write_file_atomic(const char *path, const char *data, size_t len) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 8);
  if (!tmp) return -1;
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { free(tmp); return -1; }
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd); free(tmp); return -1;
    }
    done += (size_t)n;
  }
  fsync(fd);
  close(fd);
  int rc = rename(tmp, path);
  free(tmp);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SEED PAGES READYFILE\n", argv[0]);
    return 2;
  }
  char *end = NULL;
  errno = 0;
  uint64_t seed = strtoull(argv[1], &end, 0);
  if (errno || !end || *end) { fprintf(stderr, "pattern: bad SEED %s\n", argv[1]); return 2; }
  end = NULL;
  unsigned long long pages = strtoull(argv[2], &end, 0);
  if (errno || !end || *end || pages == 0 || pages > (1ull << 30) / PAGE * 16) {
    fprintf(stderr, "pattern: bad PAGES %s\n", argv[2]);
    return 2;
  }
  const char *ready = argv[3];
  size_t len = (size_t)pages * PAGE;

  unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) { perror("pattern: mmap"); return 1; }
  /* Keep the test simple and deterministic: no transparent huge pages.
   Advise before the first touch, so the fill below faults in 4 KiB pages. */
  madvise(mem, len, MADV_NOHUGEPAGE);
  for (unsigned long long i = 0; i < pages; i++) fill_page(mem + i * PAGE, seed, i);
  if (mlock(mem, len) != 0) perror("pattern: mlock (continuing without it)");

  /* Physical frame numbers, for cross-checking a dump's address mapping. */
  size_t cap = (size_t)pages * 40 + 64;
  char *pfns = malloc(cap);
  size_t used = 0;
  if (pfns) {
    int pm = open("/proc/self/pagemap", O_RDONLY);
    for (unsigned long long i = 0; i < pages; i++) {
      uint64_t entry = 0;
      if (pm >= 0) {
        uintptr_t va = (uintptr_t)(mem + i * PAGE);
        off_t off = (off_t)(va / PAGE) * 8;
        if (pread(pm, &entry, 8, off) != 8) entry = 0;
      }
      uint64_t pfn = (entry >> 63) & 1 ? (entry & ((1ull << 55) - 1)) : 0;
      used += (size_t)snprintf(pfns + used, cap - used, "%llu %llx\n", i, (unsigned long long)pfn);
    }
    if (pm >= 0) close(pm);
    size_t rl = strlen(ready);
    char *pfnpath = malloc(rl + 6);
    if (pfnpath) {
      memcpy(pfnpath, ready, rl);
      memcpy(pfnpath + rl, ".pfns", 6);
      if (write_file_atomic(pfnpath, pfns, used) != 0) perror("pattern: write pfns");
      free(pfnpath);
    }
    free(pfns);
  }

  char buf[32];
  int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (write_file_atomic(ready, buf, (size_t)n) != 0) { perror("pattern: write ready file"); return 1; }
  printf("pattern: pid=%ld seed=0x%llx pages=%llu va=%p ready\n", (long)getpid(),
         (unsigned long long)seed, pages, (void *)mem);
  fflush(stdout);

  for (;;) pause();
}
