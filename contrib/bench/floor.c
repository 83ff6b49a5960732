// The floor: the least CPU one staple costs on this machine, for comparing Stapler against.
//
//   floor CERT_DIR ISSUER.pem REQUEST.der RESPONSE.der
//
// For every *.pem in CERT_DIR, on one thread, it does only what a staple cannot do without:
//   read     open, fstat, read and close the bundle;
//   http     one HTTP/1.1 POST and its answer over ONE kept-alive loopback TCP connection,
//            waiting in epoll_wait as the daemon's loop does;
//   verify   find tbsResponseData and the signature in the bytes received, SHA-256 them and
//            check the ECDSA P-256 signature with the issuer's key through a key context made
//            once (an issuer-signed answer, as the benchmark's responder gives);
//   write    the answer to "<bundle>.ocsp" through a temporary file and a rename in the same
//            directory, so a reader never sees half a staple.
// Listing the directory ("list") is counted too, spread over the certificates.
//
// Left out on purpose, so the figure is a lower bound rather than a rival implementation:
// decoding the bundle (PEM, the leaf's serial), building a request per certificate, checking
// the answer's CertID, status and times, syncing, pushing to HAProxy, start-up. The server is
// a second thread answering every request with RESPONSE.der (a real answer from the
// benchmark's responder); only the measuring thread's CPU is counted (CLOCK_THREAD_CPUTIME_ID
// per stage, getrusage(RUSAGE_THREAD) for user and system time), as the responder's CPU is
// not counted against Stapler.
//
// Prints one line of key=value pairs for contrib/bench/bench.py: µs of CPU per staple for each
// stage and in all (net of the clock reads around them), user and sys time per staple from
// getrusage, and what one clock read costs.
// Exits 1 when any staple failed (a verification that did not pass counts), 2 on bad usage
// or set-up.
//
// Build: gcc -O2 -Wall -Wextra -o floor contrib/bench/floor.c -lcrypto -lpthread
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

// Bundles are a leaf, its chain and a key: a few KiB. A bigger file is not one of ours.
#define MAX_BUNDLE (64 * 1024)
// An OCSP answer with an embedded responder certificate stays under 4 KiB.
#define MAX_ANSWER (16 * 1024)

static _Noreturn void die(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fputs("floor: ", stderr);
    vfprintf(stderr, format, arguments);
    va_end(arguments);
    fputc('\n', stderr);
    exit(2);
}

static unsigned char *read_whole(const char *path, size_t limit, size_t *length) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    unsigned char *data = malloc(limit);
    if (!data)
        die("out of memory");
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, data + got, limit - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("%s: %s", path, strerror(errno));
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == limit)
            die("%s: larger than %zu bytes", path, limit);
    }
    close(fd);
    *length = got;
    return data;
}

// ---------------------------------------------------------------------------------------
// The server thread: stands in for the responder. It knows the request's exact length (the
// client is this program), so it parses nothing and its CPU is not measured anyway.

struct server {
    int listener;
    size_t request_length;
    const unsigned char *reply;  // HTTP head and body, ready to send
    size_t reply_length;
};

static int write_all(int fd, const void *data, size_t length) {
    const unsigned char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

static void *serve(void *argument) {
    const struct server *server = argument;
    int connection = accept4(server->listener, NULL, NULL, SOCK_CLOEXEC);
    if (connection < 0)
        return NULL;
    int one = 1;
    setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    unsigned char buffer[4096];
    size_t pending = 0;  // bytes of the current request received so far
    for (;;) {
        ssize_t n = read(connection, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;  // the client closed: the run is over
        pending += (size_t)n;
        // One request at a time: the client waits for each answer before sending again.
        if (pending >= server->request_length) {
            pending -= server->request_length;
            if (write_all(connection, server->reply, server->reply_length) < 0)
                break;
        }
    }
    close(connection);
    return NULL;
}

// ---------------------------------------------------------------------------------------
// The client side of one exchange, as a one-thread daemon does it: a non-blocking socket
// registered once with epoll, wait for readability, read what came, find the body.

struct client {
    int socket;
    int epoll;
    const unsigned char *request;
    size_t request_length;
};

// Sends the whole request. On a connection that is idle between exchanges the socket buffer
// is empty, so a short send never happens in practice; poll() covers it if it does.
static int send_request(const struct client *client) {
    size_t sent = 0;
    while (sent < client->request_length) {
        ssize_t n = send(client->socket, client->request + sent, client->request_length - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd writable = {.fd = client->socket, .events = POLLOUT};
            poll(&writable, 1, -1);
        } else {
            return -1;
        }
    }
    return 0;
}

// Content-Length from an HTTP head ending in "\r\n\r\n"; -1 when absent or malformed.
static long content_length(const char *head, size_t length) {
    static const char name[] = "\r\ncontent-length:";
    size_t name_length = sizeof name - 1;
    for (size_t i = 0; i + name_length <= length; i++) {
        if (head[i] != '\r' || strncasecmp(head + i, name, name_length) != 0)
            continue;
        size_t j = i + name_length;
        while (j < length && (head[j] == ' ' || head[j] == '\t'))
            j++;
        long value = 0;
        size_t digits = 0;
        while (j < length && head[j] >= '0' && head[j] <= '9' && digits < 9) {
            value = value * 10 + (head[j++] - '0');
            digits++;
        }
        return digits > 0 && j < length && head[j] == '\r' ? value : -1;
    }
    return -1;
}

// One exchange. Returns the body's length and sets *body into `buffer`, or -1.
static long exchange(const struct client *client, unsigned char *buffer, size_t capacity,
                     const unsigned char **body) {
    if (send_request(client) < 0)
        return -1;
    size_t got = 0;
    long head_length = -1, body_length = -1;
    for (;;) {
        struct epoll_event event;
        int ready = epoll_wait(client->epoll, &event, 1, -1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready != 1)
            return -1;
        ssize_t n = recv(client->socket, buffer + got, capacity - got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
        if (head_length < 0) {
            unsigned char *end = memmem(buffer, got, "\r\n\r\n", 4);
            if (!end) {
                if (got == capacity)
                    return -1;
                continue;
            }
            head_length = end + 4 - buffer;
            if (got < 13 || memcmp(buffer, "HTTP/1.1 200 ", 13) != 0)
                return -1;
            body_length = content_length((const char *)buffer, (size_t)head_length);
            if (body_length < 0 || (size_t)(head_length + body_length) > capacity)
                return -1;
        }
        if (got >= (size_t)(head_length + body_length)) {
            // Keep-alive with one request in flight: nothing may follow the answer.
            if (got != (size_t)(head_length + body_length))
                return -1;
            *body = buffer + head_length;
            return body_length;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Just enough DER to find what is signed in an OCSP answer (RFC 6960 §4.2.1):
//   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT
//     SEQUENCE { responseType OID, response OCTET STRING } }
//   BasicOCSPResponse ::= SEQUENCE { tbsResponseData SEQUENCE, signatureAlgorithm
//     AlgorithmIdentifier, signature BIT STRING, certs [0] OPTIONAL }
// Every length is checked against what encloses it: the answer comes off the network.

struct element {
    const unsigned char *start;    // the tag
    const unsigned char *content;
    const unsigned char *end;      // one past the content
};

// Reads the element at *p with tag `tag`, no further than `end`; moves *p past it.
static int der_next(const unsigned char **p, const unsigned char *end, unsigned char tag, struct element *out) {
    const unsigned char *q = *p;
    if (end - q < 2 || q[0] != tag)
        return -1;
    out->start = q;
    size_t length = q[1];
    q += 2;
    if (length & 0x80) {
        size_t bytes = length & 0x7f;
        // An answer is far below 4 GiB; 0x80 (indefinite) is not DER.
        if (bytes == 0 || bytes > 4 || (size_t)(end - q) < bytes)
            return -1;
        length = 0;
        for (size_t i = 0; i < bytes; i++)
            length = length << 8 | *q++;
    }
    if ((size_t)(end - q) < length)
        return -1;
    out->content = q;
    out->end = q + length;
    *p = out->end;
    return 0;
}

static int der_equals(const struct element *e, const unsigned char *bytes, size_t length) {
    return (size_t)(e->end - e->start) == length && memcmp(e->start, bytes, length) == 0;
}

// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1)
static const unsigned char OCSP_BASIC[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};
// AlgorithmIdentifier { ecdsa-with-SHA256 } without parameters (RFC 5758 §3.2)
static const unsigned char ECDSA_SHA256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

// Sets the signed bytes (tbsResponseData, header included) and the DER ECDSA signature.
static int signed_parts(const unsigned char *der, size_t length, struct element *tbs, const unsigned char **signature,
                        size_t *signature_length) {
    const unsigned char *p = der, *end = der + length;
    struct element response, status, wrapper, bytes, type, octets, basic, algorithm, bits;
    if (der_next(&p, end, 0x30, &response) < 0 || response.end != end)
        return -1;
    p = response.content;
    if (der_next(&p, response.end, 0x0a, &status) < 0 || status.end - status.content != 1 || status.content[0] != 0)
        return -1;  // not "successful"
    if (der_next(&p, response.end, 0xa0, &wrapper) < 0)
        return -1;
    p = wrapper.content;
    if (der_next(&p, wrapper.end, 0x30, &bytes) < 0)
        return -1;
    p = bytes.content;
    if (der_next(&p, bytes.end, 0x06, &type) < 0 || !der_equals(&type, OCSP_BASIC, sizeof OCSP_BASIC))
        return -1;
    if (der_next(&p, bytes.end, 0x04, &octets) < 0)
        return -1;
    p = octets.content;
    if (der_next(&p, octets.end, 0x30, &basic) < 0)
        return -1;
    p = basic.content;
    if (der_next(&p, basic.end, 0x30, tbs) < 0)
        return -1;
    if (der_next(&p, basic.end, 0x30, &algorithm) < 0 || !der_equals(&algorithm, ECDSA_SHA256, sizeof ECDSA_SHA256))
        return -1;
    // A BIT STRING's first byte counts unused bits: a signature has none.
    if (der_next(&p, basic.end, 0x03, &bits) < 0 || bits.end - bits.content < 2 || bits.content[0] != 0)
        return -1;
    *signature = bits.content + 1;
    *signature_length = (size_t)(bits.end - bits.content - 1);
    return 0;
}

// ---------------------------------------------------------------------------------------

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double seconds(struct timeval t) {
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

// The names of the bundles in `directory` (names ending in ".pem"), in listing order.
static char **list_bundles(int directory, size_t *count) {
    int fd = dup(directory);
    DIR *listing = fd < 0 ? NULL : fdopendir(fd);
    if (!listing)
        die("cannot list the certificate directory: %s", strerror(errno));
    char **names = NULL;
    size_t capacity = 0;
    *count = 0;
    struct dirent *entry;
    while ((entry = readdir(listing))) {
        size_t length = strlen(entry->d_name);
        if (length < 4 || strcmp(entry->d_name + length - 4, ".pem") != 0)
            continue;
        if (*count == capacity) {
            capacity = capacity ? capacity * 2 : 1024;
            names = realloc(names, capacity * sizeof *names);
            if (!names)
                die("out of memory");
        }
        if (!(names[(*count)++] = strdup(entry->d_name)))
            die("out of memory");
    }
    closedir(listing);
    return names;
}

// The bundle's bytes into `buffer`; -1 when it cannot be read or is empty.
static ssize_t read_bundle(int directory, const char *name, unsigned char *buffer, size_t capacity) {
    int fd = openat(directory, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat status;
    ssize_t got = -1;
    // fstat as the daemon does, which sizes its read and notes the version it read.
    if (fstat(fd, &status) == 0 && status.st_size > 0 && (size_t)status.st_size <= capacity) {
        got = read(fd, buffer, (size_t)status.st_size);
        if (got != status.st_size)
            got = -1;
    }
    close(fd);
    return got;
}

static int write_staple(int directory, const char *bundle, const unsigned char *der, size_t length) {
    char temporary[NAME_MAX + 16], final[NAME_MAX + 16];
    if ((size_t)snprintf(temporary, sizeof temporary, ".%s.ocsp.tmp", bundle) >= sizeof temporary
        || (size_t)snprintf(final, sizeof final, "%s.ocsp", bundle) >= sizeof final)
        return -1;
    int fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int failed = write_all(fd, der, length) < 0;
    failed |= close(fd) < 0;
    if (failed || renameat(directory, temporary, directory, final) < 0) {
        unlinkat(directory, temporary, 0);
        return -1;
    }
    return 0;
}

// What one clock read costs: each stage's figure includes about one.
static double clock_read_cost(void) {
    enum { reads = 10000 };
    double started = thread_cpu(), last = started;
    for (int i = 0; i < reads; i++)
        last = thread_cpu();
    return (last - started) / reads;
}

int main(int argc, char **argv) {
    if (argc != 5)
        die("usage: floor CERT_DIR ISSUER.pem REQUEST.der RESPONSE.der");
    const char *certificates = argv[1];

    // The issuer's key, one verification context for every answer: the daemon too verifies
    // every answer of an issuer with that issuer's key.
    FILE *issuer_file = fopen(argv[2], "r");
    if (!issuer_file)
        die("%s: %s", argv[2], strerror(errno));
    X509 *issuer = PEM_read_X509(issuer_file, NULL, NULL, NULL);
    fclose(issuer_file);
    if (!issuer)
        die("%s: not a PEM certificate", argv[2]);
    EVP_PKEY_CTX *verifier = EVP_PKEY_CTX_new(X509_get0_pubkey(issuer), NULL);
    if (!verifier || EVP_PKEY_verify_init(verifier) <= 0 || EVP_PKEY_CTX_set_signature_md(verifier, EVP_sha256()) <= 0)
        die("%s: no EC key to verify with", argv[2]);

    size_t request_body_length, answer_length;
    unsigned char *request_body = read_whole(argv[3], MAX_ANSWER, &request_body_length);
    unsigned char *answer = read_whole(argv[4], MAX_ANSWER, &answer_length);
    {
        struct element tbs;
        const unsigned char *signature;
        size_t signature_length;
        if (signed_parts(answer, answer_length, &tbs, &signature, &signature_length) < 0)
            die("%s: not a successful, issuer-signed (ECDSA with SHA-256) basic OCSP response", argv[4]);
    }

    // The request a client sends, headers as curl's; the same bytes every time (a daemon's
    // differ only in the certificate's serial number).
    unsigned char *request = malloc(512 + request_body_length);
    if (!request)
        die("out of memory");
    int head = snprintf((char *)request, 512,
                        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
                        "Content-Type: application/ocsp-request\r\nContent-Length: %zu\r\n\r\n",
                        request_body_length);
    memcpy(request + head, request_body, request_body_length);
    unsigned char *reply = malloc(256 + answer_length);
    if (!reply)
        die("out of memory");
    int reply_head = snprintf((char *)reply, 256,
                              "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: %zu\r\n\r\n",
                              answer_length);
    memcpy(reply + reply_head, answer, answer_length);

    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t address_length = sizeof address;
    struct server server = {.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
                            .request_length = (size_t)head + request_body_length,
                            .reply = reply,
                            .reply_length = (size_t)reply_head + answer_length};
    if (server.listener < 0 || bind(server.listener, (struct sockaddr *)&address, sizeof address) < 0
        || getsockname(server.listener, (struct sockaddr *)&address, &address_length) < 0
        || listen(server.listener, 1) < 0)
        die("cannot listen on loopback: %s", strerror(errno));
    pthread_t server_thread;
    if (pthread_create(&server_thread, NULL, serve, &server) != 0)
        die("cannot start the server thread");

    struct client client = {.socket = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
                            .epoll = epoll_create1(EPOLL_CLOEXEC),
                            .request = request,
                            .request_length = server.request_length};
    if (client.socket < 0 || client.epoll < 0 || connect(client.socket, (struct sockaddr *)&address, sizeof address) < 0)
        die("cannot connect to the server thread: %s", strerror(errno));
    // Connected first, non-blocking after: the connection is made once, not per staple.
    int one = 1;
    struct epoll_event interest = {.events = EPOLLIN, .data.fd = client.socket};
    if (fcntl(client.socket, F_SETFL, O_NONBLOCK) < 0
        || setsockopt(client.socket, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0
        || epoll_ctl(client.epoll, EPOLL_CTL_ADD, client.socket, &interest) < 0)
        die("cannot set up the client socket: %s", strerror(errno));

    int directory = open(certificates, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory < 0)
        die("%s: %s", certificates, strerror(errno));

    double clock_cost = clock_read_cost();
    static unsigned char bundle[MAX_BUNDLE], received[MAX_ANSWER];
    double list = 0, stage[4] = {0};  // read, http, verify, write
    size_t count, failures = 0;
    struct rusage usage_before, usage_after;
    getrusage(RUSAGE_THREAD, &usage_before);
    double t = thread_cpu();
    char **names = list_bundles(directory, &count);
    list = thread_cpu() - t;
    if (count == 0)
        die("%s: no *.pem", certificates);

    for (size_t i = 0; i < count; i++) {
        double t0 = thread_cpu();
        int failed = read_bundle(directory, names[i], bundle, sizeof bundle) < 0;
        double t1 = thread_cpu();
        const unsigned char *body;
        long body_length = exchange(&client, received, sizeof received, &body);
        if (body_length < 0)  // the connection is in an unknown state: nothing after is a measurement
            die("HTTP exchange %zu failed", i + 1);
        double t2 = thread_cpu();
        struct element tbs;
        const unsigned char *signature;
        size_t signature_length;
        unsigned char digest[SHA256_DIGEST_LENGTH];
        if (signed_parts(body, (size_t)body_length, &tbs, &signature, &signature_length) < 0
            || !SHA256(tbs.start, (size_t)(tbs.end - tbs.start), digest)
            || EVP_PKEY_verify(verifier, signature, signature_length, digest, sizeof digest) != 1)
            failed = 1;
        double t3 = thread_cpu();
        if (!failed && write_staple(directory, names[i], body, (size_t)body_length) < 0)
            failed = 1;
        double t4 = thread_cpu();
        stage[0] += t1 - t0;
        stage[1] += t2 - t1;
        stage[2] += t3 - t2;
        stage[3] += t4 - t3;
        failures += (size_t)failed;
    }
    getrusage(RUSAGE_THREAD, &usage_after);

    // Closing the client ends the server's loop.
    close(client.socket);
    pthread_join(server_thread, NULL);

    // Each stage's interval holds about one clock read (a system call here, about a
    // microsecond): taken out of the stages and the total, left in user and sys (getrusage
    // cannot separate it), which therefore hold about four more per staple.
    double per = 1e6 / (double)count;
    for (int i = 0; i < 4; i++)
        stage[i] = stage[i] - clock_cost * (double)count;
    list -= clock_cost;
    double total = list + stage[0] + stage[1] + stage[2] + stage[3];
    double user = seconds(usage_after.ru_utime) - seconds(usage_before.ru_utime);
    double system = seconds(usage_after.ru_stime) - seconds(usage_before.ru_stime);
    printf("staples=%zu failures=%zu list=%.2f read=%.2f http=%.2f verify=%.2f write=%.2f total=%.2f"
           " user=%.2f sys=%.2f clock_read=%.3f\n",
           count, failures, list * per, stage[0] * per, stage[1] * per, stage[2] * per, stage[3] * per, total * per,
           user * per, system * per, clock_cost * 1e6);
    if (failures > 0)
        fprintf(stderr, "floor: %zu of %zu staples failed\n", failures, count);

    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    close(directory);
    close(client.epoll);
    close(server.listener);
    free(reply);
    free(request);
    free(answer);
    free(request_body);
    EVP_PKEY_CTX_free(verifier);
    X509_free(issuer);
    return failures > 0;
}
