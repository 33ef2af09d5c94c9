// DuckDB's `duckdb_result` (duckdb.h): six pointer-sized fields, only read
// by DuckDB. Declared so Swift can pass one by value, as
// `duckdb_fetch_chunk` takes it.
#ifndef UDR_DUCKDB_RESULT_H
#define UDR_DUCKDB_RESULT_H

#include <stdint.h>

typedef struct {
    uint64_t deprecated_column_count;
    uint64_t deprecated_row_count;
    uint64_t deprecated_rows_changed;
    void *deprecated_columns;
    char *deprecated_error_message;
    void *internal_data;
} udr_duckdb_result;

#endif
