import { loadConfig } from './config.js';
import { rotationTimer } from './functions/rotationTimer.js';
import { registerRoutes, registerTimer } from './functionsHost.js';
import { jsonLineLogger } from './logger.js';
import { routes } from './routes.js';
import { createServices } from './services.js';

// Settings are validated while the host loads this module: a bad setting stops start-up, naming it.
const config = loadConfig(process.env);
const services = createServices(config, jsonLineLogger((line) => console.log(line)));

registerRoutes(routes, () => services);
registerTimer(rotationTimer, () => services);
