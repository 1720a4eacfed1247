// Package browsertest drives the walq dashboard (package web) in headless
// Chromium through chromedp. It is a module of its own so that the browser
// driver never becomes a dependency of walq. The tests skip when no
// Chromium is installed; CI installs it (apt-get install -y chromium).
package browsertest
