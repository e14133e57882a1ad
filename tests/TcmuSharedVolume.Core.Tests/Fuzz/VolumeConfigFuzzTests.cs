using System.Text;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// Config strings (attrib/dev_config, written by anyone with targetcli): any text parses or is
/// refused with a reason, never an exception; and a config built from valid parts with
/// <see cref="ConfigString.Escape"/> reads back exactly those parts.
/// </summary>
public sealed class VolumeConfigFuzzTests(ITestOutputHelper output)
{
    private const string Alphabet = "/%;=:,.-_ \n\r\t\0aAzZ09fFxX~+@é€";
    private static readonly string[] Fragments =
    [
        "sharedvol/", "/", ";", "=", "%", "%3A", "%3a", "%2F", "%00", "%G1", "%4", "%%", "..", ".",
        "size=", "serial=", "initiator=", "target=", "rtpi=", "direct=", "preallocate=", "iqn.", "naa.", "eui.", "fc.",
        ",t,0x", "0x", "1", "0", "4096", "1G", "9999999999999999999T", "-1", "\n", " ",
    ];

    private static string RandomText(Random rng)
    {
        var sb = new StringBuilder();
        if (rng.Next(4) != 0) sb.Append(VolumeConfig.Prefix);
        int parts = rng.Next(0, 12);
        for (int p = 0; p < parts; p++)
        {
            if (rng.Next(3) == 0) sb.Append(Alphabet[rng.Next(Alphabet.Length)]);
            else sb.Append(Fragments[rng.Next(Fragments.Length)]);
        }
        return sb.ToString();
    }

    private static string RandomValue(Random rng, int maxLength)
    {
        var sb = new StringBuilder();
        int n = rng.Next(1, maxLength + 1);
        for (int i = 0; i < n; i++)
            sb.Append(rng.Next(10) switch
            {
                0 => Alphabet[rng.Next(Alphabet.Length)],
                1 => (char)rng.Next(0x20, 0x7F),
                _ => (char)('a' + rng.Next(26)),
            });
        return sb.ToString();
    }

    [Fact]
    public void AnyTextParsesOrIsRefusedWithAReason_AndValidConfigsRoundTrip()
    {
        int cases = FuzzBudget.Cases();
        int parsed = 0;
        FuzzBudget.Run(output, "VolumeConfig.TryParse", cases, FuzzBudget.Seed(2202), (rng, i) =>
        {
            if (i % 2 == 0)
            {
                string text = RandomText(rng);
                if (VolumeConfig.TryParse(text, out var config, out var reason))
                {
                    Assert.StartsWith("/", config.Path);
                    Assert.DoesNotContain('\0', config.Path);
                    parsed++;
                }
                else Assert.False(string.IsNullOrWhiteSpace(reason));
                return;
            }

            // Built from valid parts: every option, in random order, escaped the documented way.
            var segments = Enumerable.Range(0, rng.Next(1, 4)).Select(_ => RandomValue(rng, 12).Replace("/", "").Replace("\0", "").Trim('.')).Where(s => s.Length > 0 && s != "." && s != "..").ToArray();
            if (segments.Length == 0) segments = ["disk"];
            string path = "/" + string.Join('/', segments);
            long? size = rng.Next(2) == 0 ? 512L * rng.Next(1, 1 << 20) : null;
            string? serial = rng.Next(2) == 0 ? new string(Enumerable.Range(0, rng.Next(1, 65)).Select(_ => (char)rng.Next(0x21, 0x7F)).ToArray()) : null;
            string? initiator = rng.Next(2) == 0 ? $"iqn.2024-0{rng.Next(1, 10)}.com.example:{RandomValue(rng, 10).Replace(" ", "").Replace("\t", "").Replace("\n", "").Replace("\r", "")}x" : null;
            ushort? rtpi = rng.Next(2) == 0 ? (ushort)rng.Next(1, 65536) : null;
            bool? direct = rng.Next(3) == 0 ? rng.Next(2) == 0 : null;
            var options = new List<string>();
            if (size is { } s) options.Add($"size={s}");
            if (serial is not null) options.Add($"serial={ConfigString.Escape(serial)}");
            if (initiator is not null) options.Add($"initiator={ConfigString.Escape(initiator)}");
            if (rtpi is { } r) options.Add(rng.Next(2) == 0 ? $"rtpi={r}" : $"rtpi=0x{r:x}");
            if (direct is { } d) options.Add($"direct={(d ? 1 : 0)}");
            options = [.. options.OrderBy(_ => rng.Next())];
            string cfg = VolumeConfig.Prefix + ConfigString.Escape(path) + string.Concat(options.Select(o => ";" + o)) + (rng.Next(4) == 0 ? "\n" : "");
            Assert.True(VolumeConfig.TryParse(cfg, out var c, out var why), $"'{cfg}': {why}");
            Assert.Equal(path, c.Path);
            Assert.Equal(size, c.SizeBytes);
            Assert.Equal(serial, c.Serial);
            Assert.Equal(initiator?.ToLowerInvariant(), c.Initiator?.Name);
            Assert.Equal(rtpi, c.RelativeTargetPortId);
            Assert.Equal(direct ?? false, c.Direct);
            parsed++;
        });
        Assert.True(parsed > cases / 2, $"only {parsed} of {cases} parsed");
    }
}
