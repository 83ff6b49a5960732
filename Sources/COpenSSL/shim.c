#include "COpenSSL.h"

int copenssl_sk_X509_num(const STACK_OF(X509) *sk) { return sk_X509_num(sk); }
X509 *copenssl_sk_X509_value(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }
STACK_OF(X509) *copenssl_sk_X509_new_null(void) { return sk_X509_new_null(); }
int copenssl_sk_X509_push(STACK_OF(X509) *sk, X509 *x) { return sk_X509_push(sk, x); }
void copenssl_sk_X509_free(STACK_OF(X509) *sk) { sk_X509_free(sk); }

int copenssl_sk_OPENSSL_STRING_num(const STACK_OF(OPENSSL_STRING) *sk) { return sk_OPENSSL_STRING_num(sk); }
const char *copenssl_sk_OPENSSL_STRING_value(const STACK_OF(OPENSSL_STRING) *sk, int i) {
    return sk_OPENSSL_STRING_value(sk, i);
}

void copenssl_free(void *p) { OPENSSL_free(p); }

int copenssl_sk_ASN1_INTEGER_num(const STACK_OF(ASN1_INTEGER) *sk) { return sk_ASN1_INTEGER_num(sk); }
ASN1_INTEGER *copenssl_sk_ASN1_INTEGER_value(const STACK_OF(ASN1_INTEGER) *sk, int i) { return sk_ASN1_INTEGER_value(sk, i); }

int copenssl_sk_ACCESS_DESCRIPTION_num(const AUTHORITY_INFO_ACCESS *sk) { return sk_ACCESS_DESCRIPTION_num(sk); }
ACCESS_DESCRIPTION *copenssl_sk_ACCESS_DESCRIPTION_value(const AUTHORITY_INFO_ACCESS *sk, int i) {
    return sk_ACCESS_DESCRIPTION_value(sk, i);
}

STACK_OF(X509) *copenssl_pkcs7_certificates(PKCS7 *p7) {
    if (p7 == NULL || !PKCS7_type_is_signed(p7) || p7->d.sign == NULL) return NULL;
    return p7->d.sign->cert;
}
