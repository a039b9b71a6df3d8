"""The web page's script under cache.auth: a token for this tab only.

Browsers send no `Authorization` header on their own, so the page asks for a
token (the form http/page.py renders with a 401), keeps it in the tab's
`sessionStorage` (gone when the tab closes; never a cookie, so another site
cannot make the browser send it) and sends it as `Authorization: Bearer`
with the page's own requests: following its links to other listings,
downloads (fetched, then saved from memory) and delete buttons. The answer
replaces the page's body; a page the server rendered without the token (the
first visit, a reload) is fetched again with it. An answer that calls the
token unknown (`data-refused="token"`) forgets it.
"""

PAGE_SCRIPT = r"""
(() => {
  const KEY = "flame-cache-token";
  const token = () => sessionStorage.getItem(KEY);
  const auth = () => (token() ? {Authorization: "Bearer " + token()} : {});
  const mine = (url) => new URL(url, location.href).origin === location.origin;

  async function show(response, push) {
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    if (next.body.dataset.refused === "token") sessionStorage.removeItem(KEY);
    document.title = next.title;
    document.body.replaceWith(document.adoptNode(next.body));
    if (push) history.pushState(null, "", response.url);
  }

  async function load(url, push) {
    await show(await fetch(url, {headers: auth()}), push);
  }

  async function download(link) {
    const response = await fetch(link.href, {headers: auth()});
    if (!response.ok) return show(response, false);
    const save = document.createElement("a");
    save.href = URL.createObjectURL(await response.blob());
    save.download = link.getAttribute("download") || "download";
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(save.href), 60000);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "token-form") {
      event.preventDefault();
      sessionStorage.setItem(KEY, form.elements.token.value.trim());
      load(location.href, false);
    } else if (token() && mine(form.action)) {
      event.preventDefault();
      const body = new URLSearchParams(new FormData(form));
      fetch(form.action, {method: "POST", headers: auth(), body}).then((response) => show(response, true));
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.id === "forget-token") {
      sessionStorage.removeItem(KEY);
      location.reload();
      return;
    }
    const link = event.target.closest("a");
    if (!token() || !link || link.protocol === "blob:" || !mine(link.href)) return;  // blob: our own save
    const path = new URL(link.href).pathname;
    if (link.hasAttribute("download")) {
      event.preventDefault();
      download(link);
    } else if (path === "/") {
      event.preventDefault();
      load(link.href, true);
    }
  });

  window.addEventListener("popstate", () => load(location.href, false));
  if (document.body.dataset.sent === "no" && token()) load(location.href, false);
})();
"""
