"""Sample matrix files shared by the matrix's tests (test_matrix.py,
test_matrix_report.py): small, but with host and VM kernels, two libfuse
releases from two Debian suites and both startup modes."""

MINIMAL = '''
version: 1
libfuse:
  - {version: "3.14.0", source: apt-source, debian: {version: 3.14.0-4, suite: bookworm}}
  - {version: "3.17.2", source: apt-source, debian: {version: 3.17.2-3, suite: trixie}}
kernels:
  - {name: host}
  - {name: "6.12", version: "6.12", suite: trixie, image: "linux-image-6.12*"}
  - {name: "7.2", version: "7.2", suite: sid, image: "linux-binary-7.2*"}
startup: [auto, classic]
features: {passthrough: "3.17", reply_statx: "3.18"}
'''
