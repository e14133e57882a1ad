using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace TcmuSharedVolume.Volumes;

/// <summary>The lexical rules of a config string (<see cref="VolumeConfig"/>): %XX escapes, sizes, numbers, flags.</summary>
public static class ConfigString
{
    /// <summary>Bytes, or a number with a binary K/M/G/T suffix (e.g. <c>10G</c>).</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var s = text.AsSpan().Trim();
        if (s.IsEmpty) return false;
        int shift = char.ToUpperInvariant(s[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift != 0) s = s[..^1];
        if (s.IsEmpty || s.ContainsAnyExceptInRange('0', '9') || !long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return false;
        if (n > long.MaxValue >> shift) return false;
        bytes = n << shift;
        return true;
    }

    /// <summary>Escapes a value for the config string: everything outside a safe set becomes %XX.</summary>
    public static string Escape(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            char c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or ',' or '+' or '@' or '~')
                sb.Append(c);
            else
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    internal static bool TryParseUInt(string value, out uint result)
    {
        if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return uint.TryParse(value.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out result);
        return uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result);
    }

    internal static bool TryParseFlag(string value, out bool flag)
    {
        flag = value == "1";
        return value is "0" or "1";
    }

    internal static bool TryUnescape(ReadOnlySpan<char> text, [NotNullWhen(true)] out string? value, [NotNullWhen(false)] out string? reason)
    {
        value = null;
        reason = null;
        if (text.IndexOf('%') < 0)
        {
            value = text.ToString();
            return true;
        }
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '%')
            {
                int next = text[i..].IndexOf('%');
                var run = next < 0 ? text[i..] : text.Slice(i, next);
                bytes.AddRange(Encoding.UTF8.GetBytes(run.ToString()));
                i += run.Length - 1;
                continue;
            }
            if (i + 2 >= text.Length
                || !byte.TryParse(text.Slice(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            {
                var bad = text.Slice(i, Math.Min(3, text.Length - i)).ToString();
                reason = $"bad escape '{bad}' in '{text}': write %XX with two hex digits (%3A for ':')";
                return false;
            }
            bytes.Add(b);
            i += 2;
        }
        value = Encoding.UTF8.GetString(bytes.ToArray());
        return true;
    }
}
