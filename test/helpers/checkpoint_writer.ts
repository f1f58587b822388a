// Re-export: the writer lives in the library (lib/testing/) so the CLI demo can use it.
export * from '../../lib/testing/random_checkpoint';
