// The /docs page: loads /openapi.json (with the token, if this server has one) and renders it
// with the vendored swagger-ui. Nothing is fetched from anywhere but this server.
(function () {
  "use strict";
  var KEY = "actorq.token";
  var form = document.getElementById("actorq-token");
  var problem = form.querySelector(".actorq-error");

  function headers() {
    var token = sessionStorage.getItem(KEY);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function render(spec) {
    form.hidden = true;
    window.ui = SwaggerUIBundle({
      spec: spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null, // the default would send the document to an outside validator
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      tryItOutEnabled: false,
      requestInterceptor: function (request) {
        var auth = headers().Authorization;
        if (auth && !request.headers.Authorization) request.headers.Authorization = auth;
        return request;
      },
    });
  }

  function load() {
    fetch("/openapi.json", { headers: headers() }).then(function (response) {
      if (response.status === 401) {
        if (sessionStorage.getItem(KEY)) {
          problem.textContent = "That token was refused.";
          problem.hidden = false;
        }
        sessionStorage.removeItem(KEY);
        form.hidden = false;
        return null;
      }
      if (!response.ok) throw new Error("GET /openapi.json answered " + response.status);
      return response.json();
    }).then(function (spec) {
      if (spec) render(spec);
    }).catch(function (error) {
      problem.textContent = String(error);
      problem.hidden = false;
      form.hidden = false;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, form.elements.token.value);
    form.elements.token.value = "";
    load();
  });
  load();
})();
