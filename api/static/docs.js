// Starts Swagger UI on /docs from the app's own copy (a file, not an inline script: the CSP forbids those).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
