/** @type {import('tailwindcss').Config} */
// Scans the templ sources (and the Go helpers that return class names) so
// static/app.css holds exactly the classes PayFuse uses.
module.exports = {
  content: ["./views/**/*.templ", "./views/**/*.go", "./static/app.js"],
  theme: {
    extend: {
      colors: {
        primary: { DEFAULT: "#1677ff", dark: "#0958d9" },
        sidebar: "#001529",
        canvas: "#f5f7fa",
        ink: "#1f2937",
        line: "#e5e7eb",
      },
      fontFamily: {
        sans: ["-apple-system", "BlinkMacSystemFont", "'Segoe UI'", "'PingFang SC'", "'Hiragino Sans GB'",
          "'Microsoft YaHei'", "'Noto Sans CJK SC'", "'Helvetica Neue'", "Arial", "sans-serif"],
      },
    },
  },
  plugins: [],
};
