using System.Globalization;
using System.Text;

namespace TcmuSharedVolume.Diagnostics;

/// <summary>
/// Writes Prometheus' text exposition format (version 0.0.4): per metric family one
/// <c># HELP</c> and one <c># TYPE</c> line, then its samples <c>name{label="value",…} number</c>.
/// Label values are escaped (backslash, double quote, newline); numbers are invariant, with
/// +Inf, -Inf and NaN spelled as the format wants. Off the I/O path: it allocates freely.
/// </summary>
public sealed class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly StringBuilder _text = new();
    private readonly HashSet<string> _families = [];

    /// <summary>Starts a family; each name once (the format allows no second TYPE line).</summary>
    public PrometheusText Family(string name, string type, string help)
    {
        if (!IsValidName(name)) throw new ArgumentException($"'{name}' is not a metric name", nameof(name));
        if (type is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
            throw new ArgumentException($"'{type}' is not a metric type", nameof(type));
        if (!_families.Add(name)) throw new InvalidOperationException($"metric family {name} written twice");
        _text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
        _text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        return this;
    }

    public PrometheusText Sample(string name, double value, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        _text.Append(name);
        if (labels.Length > 0)
        {
            _text.Append('{');
            for (int i = 0; i < labels.Length; i++)
            {
                if (i > 0) _text.Append(',');
                _text.Append(labels[i].Name).Append("=\"");
                foreach (char c in labels[i].Value)
                {
                    _ = c switch
                    {
                        '\\' => _text.Append("\\\\"),
                        '"' => _text.Append("\\\""),
                        '\n' => _text.Append("\\n"),
                        _ => _text.Append(c),
                    };
                }
                _text.Append('"');
            }
            _text.Append('}');
        }
        _text.Append(' ').Append(Number(value)).Append('\n');
        return this;
    }

    public static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" :
        double.IsNegativeInfinity(value) ? "-Inf" :
        double.IsNaN(value) ? "NaN" :
        value.ToString("R", CultureInfo.InvariantCulture);

    private static bool IsValidName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) &&
        name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':');

    public override string ToString() => _text.ToString();
}
