/// The `--help` and `--version` texts.
enum Usage {
    static let programVersion = "0.1.0"

    static var version: String { "stapler \(programVersion)\n" }

    static let run = """
        usage: stapler [options] [CERT_PATH ...]
               stapler check [-w SECONDS] [-c SECONDS] [--fetch] [-v] CERT ...
               stapler sandbox-check [options]

        Keeps an OCSP staple beside each certificate (<certificate>.ocsp) fresh and
        hands new staples to running HAProxy instances over their stats sockets.

        Certificates:
          CERT_PATH ...                 certificate files or directories (same as -p)
          -p, --cert-paths PATH ...     certificate files or directories to watch
          -d, --directories PATH ...    deprecated spelling of --cert-paths
          -R, --recursive               also scan subdirectories
              --file-extensions LIST    extensions of certificate files, comma-
                                        separated (default: crt,pem,cer)
          -i, --ignore PATTERN ...      skip files matching these globs (*, ?,
                                        [a-z]); a pattern starting with / must
                                        match the whole path, any other pattern
                                        the end of it
              --no-fetch-issuers        never download a missing issuer from the
                                        certificate's CA Issuers URL into
                                        <certificate>.issuer

        Staples:
              --minimum-validity SECONDS
                                        fetch a new staple when the current one
                                        expires sooner than this (default: 7200)
              --no-recycle              fetch new staples at startup even when
                                        the staple files on disk are still good
              --staple-dir DIR          write staples under DIR (the certificate's
                                        absolute path + .ocsp) instead of beside
                                        each certificate: read-only certificate
                                        directories
              --nonce                   put a nonce in OCSP requests (default:
                                        off; many responders ignore it)
              --ocsp-proxy URL          send OCSP and issuer requests through
                                        this HTTP proxy, a shared cache (default:
                                        http_proxy/all_proxy; "" for none;
                                        no_proxy exempts hosts)
              --ocsp-proxy-only         never ask a responder directly, not even
                                        when the proxy fails and a staple is
                                        within --minimum-validity
          -t, --renewal-threads N       at most N OCSP requests at a time
                                        (default: 8)
          -r, --refresh-interval SECONDS
                                        rescan certificate paths this often
                                        (default: 60)
              --one-off                 scan, fetch what is due, write, push,
                                        then exit; exit status 1 on any failure
              --push-only               never ask a responder: push the staple
                                        files another Stapler writes (beside the
                                        certificates or under --staple-dir) to
                                        HAProxy, each verified first

        HAProxy:
          -s, --haproxy-sockets SOCKET ...
                                        stats sockets (level admin) to push
                                        staples to: the n-th socket serves the
                                        n-th cert path, or one socket serves all
              --no-haproxy-sockets      never push to HAProxy, even when a config
                                        file or haproxy.cfg names sockets
              --haproxy-config FILE ... read certificate paths (crt, crt-list,
                                        crt-base) and stats sockets from these
                                        haproxy.cfg files or directories
              --haproxy-socket-keepalive SECONDS
                                        close an idle stats socket connection
                                        after this long (default: 10)

        Logging:
          -v                            one step more output; repeat for more
              --verbosity 0-4           0 critical, 1 error, 2 warning, 3 info,
                                        4 debug (default: 2); each -v adds one
          -q, --quiet                   no log output on the terminal
          -l, --logdir [DIR]            also log to DIR/stapler.log (DIR defaults
                                        to /var/log/stapler/)
              --syslog                  also log to syslog
              --metrics ADDRESS         serve Prometheus metrics on HOST:PORT,
                                        [IPV6]:PORT or PORT (127.0.0.1 if no HOST),
                                        or on a unix socket PATH (any value with
                                        a "/"; mode 0660)
              --metrics-per-certificate[=BOOL]
                                        also one series per certificate in seven
                                        families (default: true; false leaves
                                        the aggregates only)

        After a refresh:
              --on-update COMMAND       run COMMAND (no shell: write sh -c '...' for
                                        one) once staples have changed, with their
                                        paths in $STAPLER_UPDATED_STAPLES and on
                                        stdin, one per line
              --on-update-interval SECONDS
                                        start it at most this often (default: 30)
              --on-update-timeout SECONDS
                                        SIGTERM it after this long, SIGKILL 5 s
                                        later (default: 60)

        Process:
          -D, --daemon                  detach and run in the background
              --interactive, --no-daemon
                                        stay in the foreground (overrides a
                                        config file's "daemon")
              --pidfile FILE            write the process id to FILE
              --no-sandbox, --sandbox=false
                                        do not confine the daemon (default: it
                                        confines itself with Landlock and seccomp
                                        once started; stapler sandbox-check shows
                                        what this kernel enforces)
          -c, --config FILE             read settings from FILE instead of the
                                        first of /etc/stapler/stapler.conf,
                                        ~/.stapler.conf, /etc/stapled/stapled.conf
                                        and ~/.stapled.conf
          -V, --version                 print the version and exit
          -h, --help                    print this help and exit

        Long options may be shortened to any unambiguous prefix. A config file
        takes the long option names as keys ("minimum-validity = 3600", "daemon",
        "ignore = [a, b]"); the command line overrides it.

        """

    static let check = """
        usage: stapler check [-w SECONDS] [-c SECONDS] [--fetch] [-t SECONDS] [-v]
                             [--config FILE] CERT ...

        Reports on each certificate file as a monitoring plugin (Nagios, Icinga,
        Zabbix, Sensu): line 1 is "STAPLER <worst status> - <summary> | <perfdata>"
        with the seconds of staple validity left per certificate; one line per
        certificate follows. Exit status 0 OK, 1 WARNING, 2 CRITICAL (staple
        missing, invalid, expired or revoked, certificate unreadable), 3 UNKNOWN
        (bad arguments, unreadable config file).

          -w, --warning SECONDS         WARNING when a staple has less validity
                                        left (default: --minimum-validity)
          -c, --critical SECONDS        CRITICAL when a staple has less validity
                                        left (default: 0)
              --fetch                   also ask the responder for a fresh staple
                                        and verify it (nothing is written)
          -t, --timeout SECONDS         time for all --fetch requests together
                                        (default: 10)
              --minimum-validity SECONDS
                                        the daemon's margin, for "refresh due"
                                        (default: 7200, or the config file's)
              --nonce                   put a nonce in the OCSP request
              --ocsp-proxy URL          ask through this HTTP proxy, as the
                                        daemon does (default: the config file's,
                                        else http_proxy/all_proxy; "" for none)
              --staple-dir DIR          look for staples below DIR, as the daemon
                                        writes them with --staple-dir (default:
                                        the config file's, else beside each
                                        certificate)
          -v                            every detail of every certificate
              --config FILE             config file to take defaults from
          -V, --version                 print the version and exit
          -h, --help                    print this help and exit

        """
}
