using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>-ENOENT: no such key; -ERANGE: value longer than *valueLength, which is set to the length needed (with its NUL).</summary>
    [LibraryImport(Library, EntryPoint = "rbd_metadata_get", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_metadata_get(nint image, string key, byte* value, nuint* valueLength);
}
