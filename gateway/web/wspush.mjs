/*
 * wspush.mjs - wspush.js as an ES module, with no second copy of the code.
 *
 *   import WSPush, { connect } from "/wspush.mjs";
 *
 * Importing "./wspush.js" runs the plain script once: it defines
 * globalThis.WSPush, which this module re-exports. That works in browsers
 * (the gateway serves both files from its root, so "./wspush.js" resolves
 * to /wspush.js) and in Node (wspush.js is then loaded as CommonJS, and
 * sets the global too). Keep both files side by side wherever you copy
 * them.
 */
import "./wspush.js";

const WSPush = globalThis.WSPush;

export default WSPush;
export const connect = WSPush.connect;
export const Client = WSPush.Client;
export const WSPushError = WSPush.WSPushError;
export const backoffDelay = WSPush.backoffDelay;
export const VERSION = WSPush.VERSION;
