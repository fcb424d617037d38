// Starts the vendored Swagger UI on /docs. A file rather than an inline script, so the page
// runs under the same CSP as every other page (script-src 'self').
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    // "Try it out" sends the request from this origin with the browser session; unsafe methods
    // also need the session's CSRF token, entered under Authorize (`csrf`).
    withCredentials: true,
    defaultModelsExpandDepth: 0,
    // No calls to the public validator service: nothing leaves this origin.
    validatorUrl: null,
  });
})();
