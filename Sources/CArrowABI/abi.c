// Header-only target: the Arrow C data interface structs.
