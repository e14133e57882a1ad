using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>Calls back (offset, length, exists, arg) for each extent with data, synchronously; fromSnapName null: since the image was created.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_diff_iterate2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_diff_iterate2(nint image, string? fromSnapName, ulong offset, ulong length, byte includeParent, byte wholeObject, delegate* unmanaged<ulong, nuint, int, nint, int> callback, nint arg);
}
