// Starts Swagger UI on the /docs page (a file, not an inline script, so the page's CSP can
// forbid inline scripts). Every URL is relative to the page, so the spec and each "try it out"
// call reach this same deployment under any prefix: a REST API stage (/dev/docs), an HTTP API's
// $default stage, a custom domain's base path, or a local server.
(function () {
  "use strict";
  var specUrl = new URL("openapi.json", document.baseURI).href;
  // The API's root: the page's own folder. Swagger UI would otherwise call the host's root.
  var apiRoot = new URL(".", document.baseURI).href.replace(/\/$/, "");

  function showError(message) {
    var box = document.getElementById("swagger-ui");
    box.textContent = "Could not load the API description (" + message + ").";
  }

  fetch(specUrl, { headers: { Accept: "application/json" } })
    .then(function (response) {
      if (!response.ok) {
        throw new Error(specUrl + " answered " + response.status);
      }
      return response.json();
    })
    .then(function (spec) {
      if (!spec.servers) {
        spec.servers = [{ url: apiRoot, description: "This deployment" }];
      }
      window.ui = SwaggerUIBundle({
        spec: spec,
        dom_id: "#swagger-ui",
        deepLinking: true,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      });
    })
    .catch(function (error) {
      showError(error.message);
    });
})();
