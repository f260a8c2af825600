/*
 * Test program for the secret audit (src/scan/audit.test.ts, test/cli/scan-secret.test.ts): reads a secret from stdin with read(2) (no stdio
 * buffer holds it), then KEEPS it in memory in the forms careless programs leave behind:
 *   - the stack buffer read(2) filled (main's frame, live forever),
 *   - a malloc'd exact copy,
 *   - a UTF-16LE copy (each byte widened; the test sends ASCII),
 *   - the base64 of "Bearer:" + secret (7 prefix bytes: the secret starts at offset 1 mod 3 of the encoded bytes),
 *   - the lower-case hex of the secret.
 * It prints one JSON line with the address and length of each copy, then "ready", and sleeps in pause() forever.
 * The secret never appears in argv, the environment or a file. See secret-wiper.c for the careful twin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64(const unsigned char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = B64[(v >> 18) & 63];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? B64[v & 63] : '=';
  }
  out[o] = 0;
  return o;
}

int main(void) {
  unsigned char stackbuf[4096];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(0, stackbuf + n, sizeof stackbuf - n);
    if (r < 0) { perror("secret-keeper: read"); return 2; }
    if (r == 0) break;
    n += (size_t)r;
    if (n == sizeof stackbuf) break;
  }
  if (n < 6) { fprintf(stderr, "secret-keeper: secret too short\n"); return 2; }

  unsigned char *heap = malloc(n);
  unsigned char *wide = malloc(2 * n);
  unsigned char *prefixed = malloc(n + 7);
  char *enc = malloc(4 * ((n + 7 + 2) / 3) + 1);
  char *hex = malloc(2 * n + 1);
  if (!heap || !wide || !prefixed || !enc || !hex) { fprintf(stderr, "secret-keeper: out of memory\n"); return 2; }
  memcpy(heap, stackbuf, n);
  for (size_t i = 0; i < n; i++) { wide[2 * i] = stackbuf[i]; wide[2 * i + 1] = 0; }
  memcpy(prefixed, "Bearer:", 7);
  memcpy(prefixed + 7, stackbuf, n);
  size_t enclen = b64(prefixed, n + 7, enc);
  for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", stackbuf[i]);

  printf("{\"n\":%zu,\"stack\":\"%p\",\"heap\":\"%p\",\"utf16\":\"%p\",\"base64\":\"%p\",\"base64Len\":%zu,\"hex\":\"%p\"}\n", n,
         (void *)stackbuf, (void *)heap, (void *)wide, (void *)enc, enclen, (void *)hex);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
