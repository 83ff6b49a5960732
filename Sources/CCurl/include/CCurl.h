#ifndef STAPLER_CCURL_H
#define STAPLER_CCURL_H

// Typed wrappers for libcurl's variadic calls, which Swift cannot make. One wrapper per
// argument type; nothing else belongs here.

#include <curl/curl.h>

typedef size_t (*ccurl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*ccurl_socket_callback)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*ccurl_timer_callback)(CURLM *multi, long timeout_ms, void *userp);

CURLcode ccurl_easy_setopt_long(CURL *easy, CURLoption option, long value);
CURLcode ccurl_easy_setopt_pointer(CURL *easy, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_string(CURL *easy, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_off_t(CURL *easy, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_data_callback(CURL *easy, CURLoption option, ccurl_data_callback cb);

CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
CURLMcode ccurl_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value);
CURLMcode ccurl_multi_setopt_socket_callback(CURLM *multi, ccurl_socket_callback cb);
CURLMcode ccurl_multi_setopt_timer_callback(CURLM *multi, ccurl_timer_callback cb);

CURLcode ccurl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value);
CURLcode ccurl_easy_getinfo_pointer(CURL *easy, CURLINFO info, void **value);
CURLcode ccurl_easy_getinfo_string(CURL *easy, CURLINFO info, const char **value);

// CURLMsg.data is a union; these read the two members we use.
static inline CURLcode ccurl_msg_result(const CURLMsg *msg) { return msg->data.result; }

static const int CCURL_POLL_IN = CURL_POLL_IN;
static const int CCURL_POLL_OUT = CURL_POLL_OUT;
static const int CCURL_POLL_INOUT = CURL_POLL_INOUT;
static const int CCURL_POLL_REMOVE = CURL_POLL_REMOVE;
static const int CCURL_CSELECT_IN = CURL_CSELECT_IN;
static const int CCURL_CSELECT_OUT = CURL_CSELECT_OUT;
static const int CCURL_CSELECT_ERR = CURL_CSELECT_ERR;
static const curl_socket_t CCURL_SOCKET_TIMEOUT = CURL_SOCKET_TIMEOUT;
static const long CCURL_GLOBAL_DEFAULT = CURL_GLOBAL_DEFAULT;

#endif
