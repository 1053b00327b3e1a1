/* JPEG decoding through libjpeg(-turbo), from memory.
 *
 * Strict: every decoder warning (corrupt data, premature end of file) is an
 * error, so a damaged file never yields a partly grey image. Progressive
 * files with absurdly many scans are refused (a known CPU bomb). As in the
 * PNG decoder, setjmp lives in a helper whose locals never change, and all
 * state crossing the longjmp is in a job owned by the caller.
 */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <string.h>

#include <jpeglib.h>

#include "image/image_impl.h"

#define MAX_SCANS 1000

typedef struct jpeg_job {
  struct jpeg_error_mgr mgr;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  lvmmed_image *img;
  lvmmed_status status;
  char *err;
  size_t errlen;
} jpeg_job;

static void fail_now(j_common_ptr cinfo, lvmmed_status st, const char *why) {
  jpeg_job *job = (jpeg_job *)cinfo->err;
  if (job->status == LVMMED_OK) {
    job->status = st;
    lvmmed__img_error(job->err, job->errlen, st, "JPEG: %s", why);
  }
  longjmp(job->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo) {
  char text[JMSG_LENGTH_MAX];
  cinfo->err->format_message(cinfo, text);
  fail_now(cinfo, LVMMED_ERR_FORMAT, text);
}

static void on_emit(j_common_ptr cinfo, int level) {
  if (level >= 0) return; /* trace messages */
  char text[JMSG_LENGTH_MAX];
  cinfo->err->format_message(cinfo, text);
  fail_now(cinfo, LVMMED_ERR_FORMAT, text); /* warnings mean corrupt data */
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; /* the library never prints */ }

static void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > MAX_SCANS)
    fail_now(cinfo, LVMMED_ERR_LIMIT, "more than 1000 scans (progressive-JPEG bomb)");
}

static void body(j_decompress_ptr cinfo, jpeg_job *job, const unsigned char *data, size_t size) {
  lvmmed_image *img = job->img;
  jpeg_mem_src(cinfo, data, (unsigned long)size);
  jpeg_read_header(cinfo, TRUE);
  char msg[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__image_check_size(img, cinfo->image_width, cinfo->image_height, "JPEG", msg,
                                              sizeof msg);
  if (st != LVMMED_OK) {
    job->status = st;
    lvmmed__img_error(job->err, job->errlen, st, "%s", msg);
    return;
  }
  if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
    job->status = lvmmed__img_error(job->err, job->errlen, LVMMED_ERR_UNSUPPORTED,
                                    "JPEG: CMYK/YCCK colour is not supported");
    return;
  }
  cinfo->out_color_space = cinfo->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo);
  uint32_t w = cinfo->output_width, h = cinfo->output_height, ch = (uint32_t)cinfo->output_components;
  unsigned char *row = lvmmed__image_scratch(img, (size_t)w * ch);
  float *d = row ? lvmmed__image_alloc(img, ch, h, w) : NULL;
  if (!d) {
    job->status = lvmmed__img_error(job->err, job->errlen, LVMMED_ERR_OUT_OF_MEMORY, "JPEG: out of memory");
    return;
  }
  size_t plane = (size_t)w * h;
  while (cinfo->output_scanline < h) {
    JSAMPROW r = row;
    size_t y = cinfo->output_scanline;
    if (jpeg_read_scanlines(cinfo, &r, 1) != 1) fail_now((j_common_ptr)cinfo, LVMMED_ERR_FORMAT, "no scanline");
    float *o = d + y * w;
    if (ch == 1) {
      for (uint32_t x = 0; x < w; x++) o[x] = row[x];
    } else {
      for (uint32_t x = 0; x < w; x++) {
        o[x] = row[3 * x];
        o[plane + x] = row[3 * x + 1];
        o[2 * plane + x] = row[3 * x + 2];
      }
    }
  }
  jpeg_finish_decompress(cinfo);
  img->bit_depth = 8;
  img->sample = LVMMED_SAMPLE_UINT;
  img->format = LVMMED_IMAGE_FORMAT_JPEG;
  img->pages = 1;
  img->page_read = 0;
}

/* The only function that calls setjmp; it changes no local after it. */
static void run(j_decompress_ptr cinfo, jpeg_job *job, const unsigned char *data, size_t size) {
  if (setjmp(job->jump)) return;
  jpeg_create_decompress(cinfo);
  cinfo->progress = &job->progress;
  body(cinfo, job, data, size);
}

lvmmed_status lvmmed__jpeg_decode(lvmmed_image *img, const unsigned char *data, size_t size, char *err,
                                  size_t errlen) {
  if (img->page != 0)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_RANGE, "JPEG: page %lld requested, the file has 1",
                             (long long)img->page);
  struct jpeg_decompress_struct cinfo;
  jpeg_job job;
  memset(&cinfo, 0, sizeof cinfo);
  memset(&job, 0, sizeof job);
  job.img = img;
  job.status = LVMMED_OK;
  job.err = err;
  job.errlen = errlen;
  cinfo.err = jpeg_std_error(&job.mgr);
  job.mgr.error_exit = on_error_exit;
  job.mgr.emit_message = on_emit;
  job.mgr.output_message = on_output;
  job.progress.progress_monitor = on_progress;
  run(&cinfo, &job, data, size);
  jpeg_destroy_decompress(&cinfo); /* safe after a failed create too: it checks its memory manager */
  return job.status;
}
