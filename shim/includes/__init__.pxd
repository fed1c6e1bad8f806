# Makes includes/ a package for Cython's relative cimports (nothing is installed).
