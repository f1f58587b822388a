// node-mamba public API.
import * as kernels from './kernels';

export { kernels };
