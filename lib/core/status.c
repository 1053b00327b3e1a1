/* Status names and descriptions, generated from the one X-macro list. */
#include "lvmmed/status.h"

const char *lvmmed_status_name(int status) {
  switch (status) {
#define LVMMED_STATUS_NAME_(name, value, text) \
  case value:                                  \
    return "LVMMED_" #name;
    LVMMED_STATUS_MAP(LVMMED_STATUS_NAME_)
#undef LVMMED_STATUS_NAME_
    default:
      return "LVMMED_UNKNOWN_STATUS";
  }
}

const char *lvmmed_status_describe(int status) {
  switch (status) {
#define LVMMED_STATUS_TEXT_(name, value, text) \
  case value:                                  \
    return text;
    LVMMED_STATUS_MAP(LVMMED_STATUS_TEXT_)
#undef LVMMED_STATUS_TEXT_
    default:
      return "unknown status code";
  }
}
