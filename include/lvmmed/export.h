/* liblvmmed — symbol visibility.
 *
 * LVMMED_API marks every function of the public ABI. The library is built
 * with -fvisibility=hidden, so anything not marked stays private.
 */
#ifndef LVMMED_EXPORT_H
#define LVMMED_EXPORT_H

#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(LVMMED_BUILDING_LIBRARY)
#    define LVMMED_API __declspec(dllexport)
#  else
#    define LVMMED_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define LVMMED_API __attribute__((visibility("default")))
#else
#  define LVMMED_API
#endif

#ifdef __cplusplus
#  define LVMMED_EXTERN_C_BEGIN extern "C" {
#  define LVMMED_EXTERN_C_END }
#else
#  define LVMMED_EXTERN_C_BEGIN
#  define LVMMED_EXTERN_C_END
#endif

#endif /* LVMMED_EXPORT_H */
