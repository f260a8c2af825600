/*
 * Test program for the secret audit (src/scan/audit.test.ts, test/cli/scan-secret.test.ts): the careful twin of secret-keeper.c. It reads the
 * secret from stdin with read(2) straight into a stack buffer (no stdio buffer ever holds it), makes the same
 * copies as the keeper (heap, UTF-16LE, base64 of "Bearer:" + secret, hex), "uses" them, then wipes every one
 * with explicit_bzero (which the compiler may not elide) and frees the heap ones. It prints the same JSON line
 * (addresses now hold zeros), then "ready", and sleeps in pause() forever. Nothing of the secret longer than a
 * 3-byte base64 group ever sits outside these buffers.
 */
#define _DEFAULT_SOURCE
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
    if (r < 0) { perror("secret-wiper: read"); return 2; }
    if (r == 0) break;
    n += (size_t)r;
    if (n == sizeof stackbuf) break;
  }
  if (n < 6) { fprintf(stderr, "secret-wiper: secret too short\n"); return 2; }

  size_t enccap = 4 * ((n + 7 + 2) / 3) + 1;
  unsigned char *heap = malloc(n);
  unsigned char *wide = malloc(2 * n);
  unsigned char *prefixed = malloc(n + 7);
  char *enc = malloc(enccap);
  char *hex = malloc(2 * n + 1);
  if (!heap || !wide || !prefixed || !enc || !hex) { fprintf(stderr, "secret-wiper: out of memory\n"); return 2; }
  memcpy(heap, stackbuf, n);
  for (size_t i = 0; i < n; i++) { wide[2 * i] = stackbuf[i]; wide[2 * i + 1] = 0; }
  memcpy(prefixed, "Bearer:", 7);
  memcpy(prefixed + 7, stackbuf, n);
  size_t enclen = b64(prefixed, n + 7, enc);
  static const char HEX[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) { hex[2 * i] = HEX[stackbuf[i] >> 4]; hex[2 * i + 1] = HEX[stackbuf[i] & 15]; }
  hex[2 * n] = 0;

  /* "use" the copies so they are really written, then wipe everything that ever held the secret */
  unsigned sum = 0;
  for (size_t i = 0; i < n; i++) sum += heap[i] + wide[2 * i] + (unsigned char)hex[i];
  for (size_t i = 0; i < enclen; i++) sum += (unsigned char)enc[i];
  explicit_bzero(stackbuf, sizeof stackbuf);
  explicit_bzero(heap, n);
  explicit_bzero(wide, 2 * n);
  explicit_bzero(prefixed, n + 7);
  explicit_bzero(enc, enccap);
  explicit_bzero(hex, 2 * n + 1);
  printf("{\"n\":%zu,\"stack\":\"%p\",\"heap\":\"%p\",\"utf16\":\"%p\",\"base64\":\"%p\",\"base64Len\":%zu,\"hex\":\"%p\",\"sum\":%u}\n", n,
         (void *)stackbuf, (void *)heap, (void *)wide, (void *)enc, enclen, (void *)hex, sum);
  free(heap);
  free(wide);
  free(prefixed);
  free(enc);
  free(hex);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
