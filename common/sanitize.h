/*
 * sanitize.h - WSP_ASAN is defined in AddressSanitizer builds (gcc defines
 * __SANITIZE_ADDRESS__, clang answers __has_feature), for code that only
 * exists there, such as the LeakSanitizer suppressions of the daemons.
 */
#ifndef WSP_SANITIZE_H
#define WSP_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define WSP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WSP_ASAN 1
#endif
#endif

#endif
