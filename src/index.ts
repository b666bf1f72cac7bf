/**
 * cigl's public API: what a program may import from the package. (Other modules are internal.)
 */

// Calibrated predictions from a saved model (runs/NAME/model): softmax(logits / T) on the fast compute path.
export {
  calibratedPredictions,
  predict,
  Predictor,
  type ClassProbability,
  type Prediction,
  type PredictOptions,
  type PredictorOptions,
} from './predict/predictor';
export { loadSavedModel, readSavedModelMetadata, type SavedModel, type SavedModelMetadata } from './predict/saved-model';
export { predictionJsonLine, predictionsArrow } from './predict/prediction-formats';
// The saved Layers model's tensor names and the cigl names they hold (also those of model.safetensors).
export { layersTensors, type LayersTensor } from './models/export-layers';
