/* QAPLIB instance reader (lvmmed_gm_load_qaplib).
 *
 * Format: n, then the n×n matrices A and B, whitespace-separated numbers.
 * Some copies put a second number (a known optimum or an id) after n on the
 * first line; it is skipped when the file then holds exactly 2n² + 2 numbers.
 * The reader assumes nothing else: n must be an integer in [1, GM_MAX_N],
 * every token a finite number no longer than TOKEN_MAX characters, and the
 * count exact. Any violation is LVMMED_ERR_FORMAT naming path, line and cause.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/gm_impl.h"

#define TOKEN_MAX 63

typedef struct reader {
  FILE *f;
  const char *path;
  size_t line;     /* line of the current position (1-based) */
  size_t tok_line; /* line on which the last token started */
  char tok[TOKEN_MAX + 2];
  size_t tok_len;
  int io_error;
} reader;

/* Next whitespace-separated token into r->tok. Returns 1, 0 at end of file,
 * or -1 if the token is longer than TOKEN_MAX. */
static int next_token(reader *r) {
  int c;
  do {
    c = getc(r->f);
    if (c == '\n') r->line++;
  } while (c != EOF && isspace(c));
  if (c == EOF) {
    if (ferror(r->f)) r->io_error = 1;
    return 0;
  }
  r->tok_line = r->line;
  size_t len = 0;
  while (c != EOF && !isspace(c)) {
    if (len == TOKEN_MAX) {
      r->tok[len] = '\0';
      return -1;
    }
    r->tok[len++] = (char)c;
    c = getc(r->f);
  }
  if (c == '\n') r->line++;
  if (c == EOF && ferror(r->f)) r->io_error = 1;
  r->tok[len] = '\0';
  r->tok_len = len;
  return 1;
}

/* Printable copy of a token for messages (control bytes as '?'). */
static const char *shown(reader *r) {
  for (char *c = r->tok; *c; c++)
    if (!isprint((unsigned char)*c)) *c = '?';
  return r->tok;
}

/* Parses the token as a finite decimal number; 0 if it is not one. */
static int parse_number(const reader *r, double *out) {
  const char *tok = r->tok;
  if (!*tok || strlen(tok) != r->tok_len) return 0; /* empty, or a NUL byte inside */
  char *end;
  errno = 0;
  double v = strtod(tok, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
  /* strtod also accepts "nan", "inf" and hex floats; only decimal numbers are data. */
  for (const char *c = tok; *c; c++)
    if (!(isdigit((unsigned char)*c) || *c == '+' || *c == '-' || *c == '.' || *c == 'e' ||
          *c == 'E'))
      return 0;
  *out = v;
  return 1;
}

lvmmed_status lvmmed_gm_load_qaplib(lvmmed_gm_solver *s, const char *path) {
  static const char fn[] = "lvmmed_gm_load_qaplib";
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!path) return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: path is NULL", fn);
  reader r = {NULL, path, 1, 1, {0}, 0, 0};
  r.f = fopen(path, "rb");
  if (!r.f)
    return lvmmed__fail(s->ctx, LVMMED_ERR_IO, "%s: %s: cannot open: %s", fn, path,
                        strerror(errno));
  lvmmed_status st = LVMMED_OK;
  double *vals = NULL;
  int t = next_token(&r);
  double nv;
  if (t <= 0) {
    st = lvmmed__fail(s->ctx, r.io_error ? LVMMED_ERR_IO : LVMMED_ERR_FORMAT,
                      "%s: %s:%zu: %s", fn, path, r.line,
                      r.io_error ? "read error" : t == 0 ? "empty file, expected n" : "token too long");
    goto done;
  }
  if (!parse_number(&r, &nv) || nv != floor(nv) || nv < 1 || nv > GM_MAX_N) {
    st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT,
                      "%s: %s:%zu: n = '%s' is not an integer in [1, %d]", fn, path, r.tok_line,
                      shown(&r), GM_MAX_N);
    goto done;
  }
  size_t n = (size_t)nv, nn = n * n;
  size_t want = 2 * nn, limit = want + 1; /* room for one extra header number */
  /* Grow with the data actually present: a bare "4096" costs nothing. */
  size_t count = 0, on_first_line = 0, cap = 0, extra_line = 0;
  for (;;) {
    t = next_token(&r);
    if (t == 0) break;
    if (t < 0) {
      st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT, "%s: %s:%zu: token '%.20s...' is too long", fn,
                        path, r.tok_line, shown(&r));
      goto done;
    }
    double v;
    if (!parse_number(&r, &v)) {
      st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT, "%s: %s:%zu: '%s' is not a finite number", fn,
                        path, r.tok_line, shown(&r));
      goto done;
    }
    if (count == limit) {
      st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT,
                        "%s: %s:%zu: more numbers than the 2n² = %zu that n = %zu announces", fn,
                        path, r.tok_line, want, n);
      goto done;
    }
    if (count == cap) {
      size_t grown = cap ? (cap > limit / 2 ? limit : 2 * cap) : (limit < 1024 ? limit : 1024);
      double *bigger = lvmmed__alloc(s->ctx, grown * sizeof *bigger);
      if (!bigger) {
        st = lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: %s: no memory for n = %zu", fn,
                          path, n);
        goto done;
      }
      if (count) memcpy(bigger, vals, count * sizeof *vals);
      lvmmed__free(s->ctx, vals);
      vals = bigger;
      cap = grown;
    }
    if (r.tok_line == 1) on_first_line++;
    if (count == want) extra_line = r.tok_line;
    vals[count++] = v;
  }
  if (r.io_error) {
    st = lvmmed__fail(s->ctx, LVMMED_ERR_IO, "%s: %s:%zu: read error", fn, path, r.line);
    goto done;
  }
  const double *data = vals;
  if (count == want + 1 && on_first_line == 1) {
    data = vals + 1; /* "n value" header */
  } else if (count > want) {
    st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT,
                      "%s: %s:%zu: more numbers than the 2n² = %zu that n = %zu announces", fn,
                      path, extra_line, want, n);
    goto done;
  } else if (count < want) {
    st = lvmmed__fail(s->ctx, LVMMED_ERR_FORMAT,
                      "%s: %s:%zu: truncated: %zu numbers after n, expected 2n² = %zu (n = %zu)",
                      fn, path, r.line, count, want, n);
    goto done;
  }
  char who[600];
  snprintf(who, sizeof who, "%s: %s", fn, path);
  st = gm_install_kb(s, n, data, data + nn, who);
done:
  lvmmed__free(s->ctx, vals);
  fclose(r.f);
  return st;
}
