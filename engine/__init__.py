"""msanii-daw engine: loads a bundle and renders audio. Never imports training code."""
