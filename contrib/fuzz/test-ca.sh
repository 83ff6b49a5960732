# Sourced by the fuzz scripts: a throwaway P-256 CA and one leaf key with its request, made
# with the openssl CLI in the current directory.
#
# make_test_ca CA_NAME LEAF_NAME DAYS [EXTRA_CONFIG]
#   writes openssl.cnf (sections req, dn, ca, then EXTRA_CONFIG with \n escapes), ca.pem,
#   ca.key, leaf.key and leaf.csr.
make_test_ca() {
    printf '[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n%b' \
        "${4:-}" > openssl.cnf
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -subj "/CN=$1" -days "$3" -config openssl.cnf -extensions ca 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -out leaf.csr \
        -subj "/CN=$2" -config openssl.cnf 2>/dev/null
}
