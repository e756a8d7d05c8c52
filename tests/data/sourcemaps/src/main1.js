// Entry of the first build (esbuild --minify).
import { scenarios, runScenarios } from './app.js';

runScenarios(scenarios);
