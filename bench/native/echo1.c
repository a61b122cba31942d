/*
 * A load generator in C for one connection with one message in flight: the
 * case where a Node load generator's own cost per message can hide the
 * server's (large messages one at a time, 1 x 1 latency). It connects to
 * 127.0.0.1:PORT, does the RFC 6455 opening handshake (checks the 101 and
 * the accept value's presence), then for DURATION seconds sends one masked
 * binary frame of SIZE bytes in one write, reads the echo, checks its header
 * and every payload byte, and only then sends the next. The first 0.5 s
 * are warm-up. Prints one JSON line: messages/s and latency percentiles.
 *
 *   cc -O2 -o echo1 echo1.c && ./echo1 PORT SIZE DURATION
 *
 * Only loopback is ever targeted. Any mismatch or I/O error: a message on
 * stderr and exit code 1.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void read_exact(int fd, unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) die("read");
    got += (size_t)r;
  }
}

static void write_all(int fd, const unsigned char *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, buf + done, n - done);
    if (w <= 0) die("write");
    done += (size_t)w;
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: echo1 PORT SIZE DURATION\n");
    return 2;
  }
  int port = atoi(argv[1]);
  size_t size = (size_t)atol(argv[2]);
  double duration = atof(argv[3]);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  const char *request =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  write_all(fd, (const unsigned char *)request, strlen(request));
  /* The response head, a byte at a time so nothing after it is read. */
  char head[4096];
  size_t hl = 0;
  for (;;) {
    if (hl == sizeof head) { fprintf(stderr, "response head too long\n"); return 1; }
    read_exact(fd, (unsigned char *)head + hl, 1);
    hl++;
    if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0) break;
  }
  if (strncmp(head, "HTTP/1.1 101", 12) != 0 || strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == NULL) {
    fprintf(stderr, "handshake refused: %.*s\n", (int)hl, head);
    return 1;
  }

  unsigned char *payload = malloc(size + 1);
  unsigned char *frame = malloc(size + 14);
  unsigned char *echo = malloc(size + 1);
  if (!payload || !frame || !echo) die("malloc");
  for (size_t i = 0; i < size; i++) payload[i] = (unsigned char)(i * 31 + 7);
  size_t p = 0;
  frame[p++] = 0x82;
  if (size < 126) {
    frame[p++] = 0x80 | (unsigned char)size;
  } else if (size < 65536) {
    frame[p++] = 0x80 | 126;
    frame[p++] = (unsigned char)(size >> 8);
    frame[p++] = (unsigned char)size;
  } else {
    frame[p++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) frame[p++] = (unsigned char)((unsigned long long)size >> (8 * i));
  }
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  memcpy(frame + p, mask, 4);
  p += 4;
  for (size_t i = 0; i < size; i++) frame[p + i] = payload[i] ^ mask[i & 3];
  size_t frame_len = p + size;

  size_t cap = 1 << 22, n = 0;
  double *lat = malloc(sizeof(double) * cap);
  if (!lat) die("malloc");
  double start = now(), warm = start + 0.5, end = warm + duration, measured_from = 0;
  unsigned long long counted = 0;
  for (;;) {
    double t0 = now();
    if (t0 >= end) break;
    write_all(fd, frame, frame_len);
    unsigned char h[8];
    read_exact(fd, h, 2);
    if (h[0] != 0x82 || (h[1] & 0x80)) { fprintf(stderr, "unexpected echo header %02x %02x\n", h[0], h[1]); return 1; }
    unsigned long long len = h[1] & 0x7f;
    if (len == 126) {
      read_exact(fd, h, 2);
      len = ((unsigned long long)h[0] << 8) | h[1];
    } else if (len == 127) {
      read_exact(fd, h, 8);
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | h[i];
    }
    if (len != size) { fprintf(stderr, "echo of %llu bytes, sent %zu\n", len, size); return 1; }
    read_exact(fd, echo, size);
    if (memcmp(echo, payload, size) != 0) { fprintf(stderr, "echo differs from what was sent\n"); return 1; }
    double t1 = now();
    if (t0 >= warm) {
      if (counted == 0) measured_from = t0;
      counted++;
      if (n < cap) lat[n++] = (t1 - t0) * 1e6;
    }
  }
  double elapsed = now() - measured_from;
  if (n == 0) { fprintf(stderr, "no message completed\n"); return 1; }
  qsort(lat, n, sizeof(double), by_value);
  printf("{\"msgsPerSec\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"messages\":%llu}\n", counted / elapsed, lat[n / 2], lat[(size_t)(n * 0.99)], counted);
  close(fd);
  return 0;
}
