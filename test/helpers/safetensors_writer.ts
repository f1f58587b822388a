// Re-export: the writer lives in the library (lib/testing/).
export * from '../../lib/testing/safetensors_writer';
